"""splatent-pipeline: the method's orchestration over the stage packages.

``run_pipeline(PipelineConfig(...))`` runs undistort, extract, fit, render, dataset,
enhance and eval on one scene as small stages over one run context, resumably;
``evaluate_results`` is the eval stage and its HTML report; ``holdout_pairs`` builds the
enhancer's training pairs from fold fits of any scene; ``run_demo(DemoConfig())`` is the
whole method offline on the procedural scene; ``run_batch(BatchConfig(...))`` fits and renders a
folder of scenes into one dataset (scene-level split, pairs from held-out views, across processes
under ``accelerate launch``); ``serve_viewer(model_dir, enhancer)`` is the live browser viewer of a fit
(viser), its frames from ``render_frame`` over a ``LatentScene``, which the enhanced fly-through shares.
Progress reaches a caller through callbacks (``say`` for lines, a progress-bar factory for long loops);
nothing here draws to a terminal itself.
"""

from .batch import PAIRS, BatchConfig, BatchResult, SceneRecord, find_scenes, run_batch
from .demo import DEMO_CODECS, DemoConfig, DemoResult, run_demo
from .evaluate import EvalResult, evaluate_folder, evaluate_results
from .flythrough import FlythroughResult, enhanced_flythrough
from .holdout import FoldPoints, Holdout, holdout_pairs
from .latent_scene import LatentScene, open_latent_scene
from .pipeline import (
    STAGE_LIST, STAGES, PipelineConfig, PipelineResult, PipelineRun, ProgressBar, RunContext, Say, Stage,
    StageRecord, run_pipeline, stage_key,
)
from .report import bar_plot_svg, contact_sheet, html_report, markdown_table
from .view_frame import MODES as VIEW_MODES, ViewFrame, browser_camera, browser_pose, render_frame, view_scores
from .viewer import SceneViewer, ViewerConfig, ViewerSession, serve_viewer

__version__ = "0.3.0"

__all__ = [
    "BatchConfig", "BatchResult", "DEMO_CODECS", "LatentScene", "SceneViewer", "VIEW_MODES", "ViewFrame",
    "ViewerConfig", "ViewerSession", "browser_camera", "browser_pose", "open_latent_scene", "render_frame",
    "serve_viewer", "view_scores", "DemoConfig", "PAIRS", "SceneRecord", "find_scenes", "run_batch", "DemoResult", "EvalResult", "FlythroughResult", "enhanced_flythrough", "FoldPoints", "Holdout", "PipelineConfig",
    "PipelineResult", "PipelineRun", "ProgressBar", "RunContext", "STAGES", "STAGE_LIST", "Say", "Stage",
    "StageRecord", "bar_plot_svg", "contact_sheet", "evaluate_folder", "evaluate_results", "holdout_pairs", "html_report",
    "markdown_table", "run_demo", "run_pipeline", "stage_key",
]
