"""What SE blocks learn (arXiv 1709.01507, section 7.2): excitations per class and per depth, charts, surgery.

* :class:`ExcitationRecorder` - hooks every SE gate and streams per-class running statistics;
* :func:`block_metrics` - class specificity, class-mean distance, saturation, within-class spread;
* :func:`run_analysis` (= :func:`analyze_excitations` + :func:`write_report` + :func:`write_charts`) - what
  ``senet excite`` runs;
* :func:`remove_se`, :func:`compare_without_se` - drop the SE blocks of a stage and measure the cost.
"""

from senet.analysis.pipeline import (
    AnalysisOutput,
    ExcitationReport,
    analyze_excitations,
    compare_without_se,
    run_analysis,
)
from senet.analysis.plots import plot_class_means, plot_depth, plot_within_class, sample_channels, write_charts
from senet.analysis.recorder import ExcitationRecorder, channel_gate, channel_gates
from senet.analysis.report import format_depth_table, report_document, write_report
from senet.analysis.selection import paper_blocks, resolve_blocks, resolve_classes
from senet.analysis.stats import METRIC_NAMES, ClassStats, block_metrics
from senet.analysis.surgery import remove_se

__all__ = [
    "METRIC_NAMES",
    "AnalysisOutput",
    "ClassStats",
    "ExcitationRecorder",
    "ExcitationReport",
    "analyze_excitations",
    "block_metrics",
    "channel_gate",
    "channel_gates",
    "compare_without_se",
    "format_depth_table",
    "paper_blocks",
    "plot_class_means",
    "plot_depth",
    "plot_within_class",
    "remove_se",
    "report_document",
    "resolve_blocks",
    "resolve_classes",
    "run_analysis",
    "sample_channels",
    "write_charts",
    "write_report",
]
