"""socikit's additional layer store for podman and CRI-O (containers/storage), docs/podman.md.

`layout` is the directory protocol (lookup paths, `info` JSON, which layers are served) as pure
functions; `usecount` is the use/release reference count; `config` the store's TOML config;
`resolve` finds an image's SOCI index and ztocs in its registry (the I/O edge); `mountpoint`
checks the directory the store is mounted on.
"""
