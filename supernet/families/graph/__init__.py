"""Graph-derived supernets: a user's own model made elastic (``elasticize``), its space read off its graph."""

from elasticnas.supernet.catalogue import register_family
from elasticnas.supernet.families.graph.capture import GraphCaptureError
from elasticnas.supernet.families.graph.elasticize import ElasticOptions, elasticize
from elasticnas.supernet.families.graph.network import GraphSupernet
from elasticnas.supernet.families.graph.source import supernet_from_space
from elasticnas.supernet.families.graph.space import GraphArch, GraphSpace

register_family("graph", space=GraphSpace, supernet=supernet_from_space)

__all__ = ["ElasticOptions", "GraphArch", "GraphCaptureError", "GraphSpace", "GraphSupernet", "elasticize",
           "supernet_from_space"]
