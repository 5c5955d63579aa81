"""Network dissection (PAPER.md section 8, the paper's RQ4): what depthwise and pointwise units
detect, on the offline probe set or on Broden."""

from multidomain.interpret.broden import BrodenProbe
from multidomain.interpret.dissect import Dissection, DissectOptions, ImageInput, run_dissection
from multidomain.interpret.offline_probe import OfflineProbe
from multidomain.interpret.report import write_report

__all__ = [
    "BrodenProbe",
    "DissectOptions",
    "Dissection",
    "ImageInput",
    "OfflineProbe",
    "run_dissection",
    "write_report",
]
