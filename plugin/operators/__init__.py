"""The plugin's operators, in the order fiftyone.yml lists them."""
from plugin.operators.compute_similarity import ComputeRamSimilarity
from plugin.operators.export_finetune import ExportRamFinetune
from plugin.operators.find_disagreements import FindRamDisagreements
from plugin.operators.tag_with_ram import TagWithRam

OPERATORS = (TagWithRam, FindRamDisagreements, ExportRamFinetune, ComputeRamSimilarity)

__all__ = ["OPERATORS", "ComputeRamSimilarity", "ExportRamFinetune", "FindRamDisagreements", "TagWithRam"]
