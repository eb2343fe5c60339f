"""``splatent dataset``: the original ``scripts/generate_dataset.py``, same flags."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from ..errors import guarded


@guarded("dataset")
def dataset(
    out_path: Path = typer.Option(..., "--out_path", "--out-path", help="Rendered scene(s): nvs/, nvs_gt/, train_gt/."),
    original_path: Path = typer.Option(..., "--original_path", "--original-path", help="Posed scene(s) the renders came from."),
    output: Path = typer.Option(Path("data/dataset.json"), "--output", "-o", help="Dataset JSON to write."),
    top_k: int = typer.Option(3, "--top_k", "--top-k", help="Reference views per entry."),
    benchmark: bool = typer.Option(False, "--benchmark", help="All rendered views go to the test split."),
    llff: bool = typer.Option(False, "--llff", help="Read poses from a COLMAP model (instead of auto-detecting)."),
    prompt: str = typer.Option("A photo of a scene", "--prompt", help="Prompt stored with every entry."),
    test_scenes: str = typer.Option(None, "--test_scenes", "--test-scenes", help="Comma-separated test scenes."),
    angle_weight: float = typer.Option(1.0, "--angle_weight", "--angle-weight", help="Radians-to-radius weight in the reference score."),
    train_renders: bool = typer.Option(True, "--train-renders/--no-train-renders", "--train_renders/--no_train_renders", help="Use train/ renders as training entries."),
    test_fraction: float = typer.Option(0.1, "--test_fraction", "--test-fraction", min=0.0, max=1.0, help="Share of scenes held out as test scenes (the original: 0.1), unless --test_scenes names them."),
    seed: int = typer.Option(42, "--seed", help="Seed of the scene shuffle (the original: 42)."),
    benchmark_path: Path = typer.Option(None, "--benchmark_path", "--benchmark-path", help="A folder of benchmark scenes: scenes of the same names are left out, never trained on."),
    protocol: str = typer.Option(None, "--protocol", help="Require every scene to have been fitted with this view protocol (llff, dense, sparse)."),
) -> None:
    """Pair rendered views with their top-k nearest training views in a dataset JSON."""
    from splatent_data import benchmark_scene_names, build_dataset, scene_protocols, write_dataset_json

    exclude = benchmark_scene_names(benchmark_path) if benchmark_path is not None else None
    entries = build_dataset(
        out_path, original_path, top_k=top_k, benchmark=benchmark, colmap=llff, prompt=prompt,
        test_scenes=test_scenes.split(",") if test_scenes else None, angle_weight=angle_weight,
        train_renders=train_renders, test_fraction=test_fraction, seed=seed, exclude_scenes=exclude,
        protocol=protocol,
    )
    # an entry's scene is the folder above its render's folder (renders/<scene>/nvs/<stem>.pt)
    scenes = {split: sorted({e.feature.parent.parent.name for e in entries if e.split == split}) for split in ("train", "test")}
    protocols = scene_protocols(out_path)
    # top_k is capped by each scene's candidate views: report what the entries hold, not what was asked
    held = sorted({len(e.ref_features) for e in entries})
    actual = held[-1] if held else 0
    write_dataset_json(output, entries, manifest={
        "stage": "dataset", "renders": str(out_path.resolve()), "original": str(original_path.resolve()),
        "top_k": actual, "top_k_requested": top_k, "benchmark": benchmark, "test_fraction": test_fraction, "seed": seed,
        "scenes": scenes, "excluded_scenes": [n for n in exclude or [] if n in protocols],
        "protocols": protocols, "entries": dict(Counter(e.split for e in entries)),
    })
    counts = Counter(e.split for e in entries)
    shown = f"top_k={actual}" if actual == top_k else f"top_k={actual} (asked {top_k}; capped by the views available)"
    if len(held) > 1:
        shown = f"top_k {held[0]}-{held[-1]} (asked {top_k}; capped by each scene's views)"
    print(f"wrote {output}: {counts.get('train', 0)} train, {counts.get('test', 0)} test entries, {shown}")
