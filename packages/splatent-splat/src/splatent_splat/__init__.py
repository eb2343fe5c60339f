"""splatent-splat: latent-feature 3D Gaussian splatting on gsplat, with a PyTorch reference rasteriser.

``rasterize`` is the one door to both backends (gsplat on CUDA, pure PyTorch
elsewhere); ``FeatureGaussians`` holds Gaussians with N-channel features;
``fit_scene`` and ``render_model`` are the ``splatent fit`` / ``splatent render`` stages.
"""

from .cameras import camera_tensors, interpolate_path, latent_camera
from .export import export_ply
from .fit import FLAT_OPTIONS, FitConfig, FitResult, fit_scene, read_fit_manifest
from .gaussians import FeatureGaussians, features_from_views, random_points_in_frustums
from .kernels import KernelBuild, build_gsplat_kernels, gsplat_cache_dir
from .losses import psnr, ssim
from .ply import INRIA_PROPERTIES, decoded_colours, load_ply, save_inria_ply, save_ply
from .backends import BACKENDS, rasterize, resolve_backend
from .render import RenderResult, latent_path, render_model
from .sh import eval_sh, rgb_to_sh, sh_bases
from .sources import ModelSource, open_model, rasterize_options
from .torch_backend import rasterize_torch
from .transform import rigidly_moved, sh_rotation
from .training import LearningRates, StrategyConfig
from .views import View, load_latent_views, load_rgb_views

__version__ = "0.5.0"

__all__ = [
    "BACKENDS", "FLAT_OPTIONS", "INRIA_PROPERTIES", "decoded_colours", "export_ply", "save_inria_ply", "FeatureGaussians", "FitConfig", "FitResult", "KernelBuild", "LearningRates", "RenderResult",
    "ModelSource", "StrategyConfig", "View", "open_model", "rigidly_moved", "sh_rotation",
    "build_gsplat_kernels", "camera_tensors", "eval_sh", "features_from_views", "fit_scene", "gsplat_cache_dir",
    "interpolate_path", "latent_camera", "latent_path", "load_latent_views", "load_ply", "load_rgb_views", "psnr",
    "random_points_in_frustums", "rasterize", "rasterize_options", "rasterize_torch", "read_fit_manifest", "render_model",
    "resolve_backend", "rgb_to_sh", "save_ply", "sh_bases", "ssim",
]
