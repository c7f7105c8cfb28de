"""What SE blocks learn (arXiv 1709.01507, section 7.2): excitations per class and per depth, charts, surgery.

* :class:`ExcitationRecorder` - hooks every SE gate and streams per-class running statistics;
* :func:`block_metrics` - class specificity, class-mean distance, saturation, within-class spread;
* :func:`run_analysis` (= :func:`analyze_excitations` + :func:`write_report` + :func:`write_charts`) - what
  ``senet excite`` runs;
* :func:`remove_se`, :func:`compare_without_se` - drop SE blocks (identity, or each block's mean excitation
  folded into the preceding layer) and measure the cost;
* :func:`prune_run` (``senet prune``) - choose the blocks from the statistics, check each removal on held-out
  images, and save the smaller model with a report.
"""

from senet.analysis.constant_fold import ChannelScale, FoldError, fold_channel_scales
from senet.analysis.pipeline import (
    AnalysisOutput,
    ExcitationReport,
    analyze_excitations,
    compare_without_se,
    run_analysis,
)
from senet.analysis.plots import plot_class_means, plot_depth, plot_within_class, sample_channels, write_charts
from senet.analysis.prune import greedy_prune, heldout_split, prune_run, rank_blocks
from senet.analysis.recorder import ExcitationRecorder, channel_gate, channel_gates
from senet.analysis.report import format_depth_table, report_document, write_report
from senet.analysis.selection import paper_blocks, resolve_blocks, resolve_classes
from senet.analysis.stats import METRIC_NAMES, ClassStats, block_metrics
from senet.analysis.surgery import mean_excitations, remove_se

__all__ = [
    "METRIC_NAMES",
    "AnalysisOutput",
    "ChannelScale",
    "ClassStats",
    "ExcitationRecorder",
    "ExcitationReport",
    "FoldError",
    "analyze_excitations",
    "block_metrics",
    "channel_gate",
    "channel_gates",
    "compare_without_se",
    "fold_channel_scales",
    "format_depth_table",
    "greedy_prune",
    "heldout_split",
    "mean_excitations",
    "paper_blocks",
    "plot_class_means",
    "plot_depth",
    "plot_within_class",
    "prune_run",
    "rank_blocks",
    "remove_se",
    "report_document",
    "resolve_blocks",
    "resolve_classes",
    "run_analysis",
    "sample_channels",
    "write_charts",
    "write_report",
]
