"""The plugin's operators, in the order fiftyone.yml lists them."""
from plugin.operators.compute_similarity import ComputeRamSimilarity
from plugin.operators.detect_with_ram import DetectWithRam
from plugin.operators.failures import reports_failures
from plugin.operators.export_finetune import ExportRamFinetune
from plugin.operators.finetune_ram import FinetuneRam
from plugin.operators.find_detection_disagreements import FindRamDetectionDisagreements
from plugin.operators.find_disagreements import FindRamDisagreements
from plugin.operators.load_reviews import LoadLabelStudioReviews
from plugin.operators.send_review import SendReviewBatch
from plugin.operators.tag_with_ram import TagWithRam
from plugin.operators.tune_thresholds import TuneRamThresholds
from plugin.operators.where_ram_sees import WhereRamSees

# Every operator answers a known error as one line (plugin/operators/failures.py).
OPERATORS = tuple(reports_failures(op) for op in (
    TagWithRam, FindRamDisagreements, ExportRamFinetune, ComputeRamSimilarity,
    SendReviewBatch, LoadLabelStudioReviews, FinetuneRam, TuneRamThresholds, DetectWithRam,
    FindRamDetectionDisagreements, WhereRamSees))

__all__ = ["OPERATORS", "ComputeRamSimilarity", "DetectWithRam", "FindRamDetectionDisagreements", "ExportRamFinetune", "FindRamDisagreements", "FinetuneRam",
           "LoadLabelStudioReviews", "SendReviewBatch", "TagWithRam", "TuneRamThresholds", "WhereRamSees"]
