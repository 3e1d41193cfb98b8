"""Lazily served image layers: the parts the snapshotter daemon and the podman store share.

| module | job |
|---|---|
| `tree` | `LayerTree`: a layer's tree as an overlay lower directory shows it, from its ztoc (pure) |
| `cache` | `SpanCache`: verified uncompressed spans on disk, bounded, least recently used evicted |
| `fetcher` | `SpanFetcher`: one layer's spans fetched by range, verified, inflated, cached (trio) |
| `background` | `BackgroundFetcher`: prefetch spans at mount, the remaining spans after a quiet period |
| `fusefs` | `LazyFileSystem`: the one pyfuse3 file system of a process; the root provider seam |
| `remote` | registry endpoints (mirrors), credentials and clients for an image reference |
| `artifacts` | SOCI index discovery and the index/ztoc fetch, once per manifest, kept on disk |
| `events` | the counters a daemon maps onto its metrics |
| `config` | the config sections both daemons take: `[background_fetch]`, `[cache]`, `[pull_modes]`, mirrors |
| `fuseprobe` | `fuse_unavailable`: whether this process can serve FUSE, before a daemon starts |

Modules are imported by their users directly (pyfuse3 and trio load only with `fusefs`,
`fetcher`, `background`).
"""
