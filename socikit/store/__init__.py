"""socikit's additional layer store for podman and CRI-O (containers/storage), docs/podman.md.

`layout` is the directory protocol (lookup paths, `info` JSON, which layers are served) as pure
functions; `usecount` the use/release reference count; `resolve` finds an image's SOCI index and
ztocs in its registry (the I/O edge); `config` (over `tomlconfig`) the store's TOML config;
`mountpoint` and `options` check what `socikit store` is started with.
"""
