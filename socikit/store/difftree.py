"""A served layer's `diff` directory: the snapshotter's layer tree with containers/storage's root.

containers/storage gives a layer it unpacks itself a root directory with the mode of the tar's own
`./` entry, else 0555; a container's `/` then takes the mode of its top layer's root. The store's
`diff` must show the same for a container to list what it lists after a normal pull, so a root
the TOC has no entry for shows 0555 (socikit.lazy's tree synthesizes it as 0755, containerd's
rule). Everything else is `socikit.lazy.tree.LayerTree`, with whiteouts shown in every layer, the
first one included: containers/storage applies each layer the same way.
"""

from __future__ import annotations

import stat

from socikit.lazy.tree import LayerTree, NodeAttributes
from socikit.ztoc.index import ROOT

__all__ = ["SYNTHESIZED_ROOT_MODE", "DiffTree"]

SYNTHESIZED_ROOT_MODE = 0o555


class DiffTree(LayerTree):
    def attributes(self, node: int) -> NodeAttributes:
        attributes = super().attributes(node)
        if node == ROOT and self.index.is_synthesized(ROOT):
            return attributes._replace(mode=stat.S_IFDIR | SYNTHESIZED_ROOT_MODE)
        return attributes
