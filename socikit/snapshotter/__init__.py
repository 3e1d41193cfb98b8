"""socikit's containerd snapshotter."""
