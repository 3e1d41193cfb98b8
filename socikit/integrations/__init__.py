"""Build-system integrations: the docker buildx post-build hook, buildx metadata files and the
containerized builder's entrypoint. python-on-whales (and the docker CLI it drives) is imported
only here and in `socikit.content.docker_daemon`, and only inside the functions that run docker."""
