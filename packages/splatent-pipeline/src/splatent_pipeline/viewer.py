"""The live viewer (``splatent view MODEL [--enhancer CKPT]``): orbit a latent fit in a browser, on viser.

Every browser tab is a client with its own controls (mode, resolution scale, top_k, cameras, snapping) and its own
render thread (:class:`FrameWorker`): the camera and the controls only wake that thread, which draws the latest
state when it is free, so a slow frame (an enhancer on a CPU) never blocks viser's event loop and requests that
arrive while it draws collapse into one. One lock keeps the clients' frames off the device one at a time. A frame
that fails is logged and shown in the panel, and the thread goes on; a client that leaves takes only its thread
with it.

The frame itself is :func:`splatent_pipeline.view_frame.render_frame` (render → enhance → decode), sent as the
scene's background image. When the camera stands on a test view (snapped to it, or by clicking its frustum), the
panel also shows PSNR / SSIM of that view against its photo (:func:`~splatent_pipeline.view_frame.view_scores`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from splatent_data import Camera, SplatentError, camera_radius

from .latent_scene import LatentScene, open_latent_scene
from .view_frame import (
    MODES, ViewFrame, browser_camera, browser_pose, frame_size, latent_resolution, matching_view, nearest_view,
    render_frame, view_scores,
)

logger = logging.getLogger("splatent")

#: The longest side of a frame in image pixels unless ``--max-size`` says otherwise: the benchmark's 512² on CUDA,
#: less on a CPU, where the torch rasteriser and the decoder take a second a frame at 512².
MAX_SIDE = {"cuda": 512, "cpu": 256}
TRAIN_COLOUR, TEST_COLOUR = (40, 110, 220), (230, 120, 20)
MIN_SCALE = 0.1  # the resolution slider's low end
TOP_K_CHOICES = (0, 1, 3, 5)  # 1 + k views must tile a rectangle (splatent_model.grid_shape)


@dataclass
class ViewerConfig:
    """How the viewer serves and draws.

    Attributes:
        host, port: Where to listen (``0.0.0.0``: every interface, as viser and nerfstudio do; a taken port moves
            on to the next free one, ``0`` takes any).
        mode: The first mode of a new client: ``decoded``, ``enhanced`` or ``side by side``.
        max_side: Longest frame side in image pixels (default: :data:`MAX_SIDE` for the device).
        resolution_scale: The first resolution scale of a new client (frame = canvas × scale, within ``max_side``).
        jpeg_quality: Frames go to the browser as JPEG.
        start_view: The stem of the training or test view a new client starts at (default: the first training
            view); a test view shows its metrics from the first frame.
    """

    host: str = "0.0.0.0"
    port: int = 8080
    mode: str = "decoded"
    max_side: int | None = None
    resolution_scale: float = 1.0
    jpeg_quality: int = 90
    start_view: str | None = None

    def __post_init__(self) -> None:
        self.mode = self.mode.replace("-", " ").replace("_", " ")  # side-by-side on a command line

    def check(self, enhancer: bool) -> None:
        """Refuse bad settings in one line each (``enhancer``: whether an enhancer is given)."""
        if self.mode not in MODES:
            raise SplatentError(f"unknown --mode {self.mode!r}; use one of: {', '.join(MODES)}")
        if self.mode != "decoded" and not enhancer:
            raise SplatentError(f"--mode {self.mode} needs an enhancer; pass --enhancer CKPT")
        if not MIN_SCALE <= self.resolution_scale <= 1:
            raise SplatentError(f"--resolution-scale must be in [{MIN_SCALE}, 1], got {self.resolution_scale}")
        if self.max_side is not None and self.max_side < 64:
            raise SplatentError(f"--max-size must be at least 64 pixels, got {self.max_side}")
        if not 0 <= self.port <= 65535:
            raise SplatentError(f"--port must be in 0..65535, got {self.port}")


class FrameWorker:
    """A thread that runs ``draw()`` each time it is woken, the latest wake-up winning: wake-ups that arrive while
    it draws make one more draw, not a queue. An exception from ``draw`` goes to ``on_error`` and the thread goes on.
    """

    def __init__(self, draw: Callable[[], None], on_error: Callable[[Exception], None], name: str = "frames"):
        self._draw, self._on_error = draw, on_error
        self._wanted = threading.Condition()
        self._pending = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        with self._wanted:
            self._pending = True
            self._wanted.notify()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop after the draw in progress, if any; ``True`` when the thread has ended."""
        with self._wanted:
            self._stopping = True
            self._wanted.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _run(self) -> None:
        while True:
            with self._wanted:
                while not (self._pending or self._stopping):
                    self._wanted.wait()
                if self._stopping:
                    return
                self._pending = False
            try:
                self._draw()
            except Exception as exc:  # a frame's failure must not end the thread
                try:
                    self._on_error(exc)
                except Exception:  # the error display itself failed (a client gone mid-frame)
                    logger.debug("showing a frame error failed", exc_info=True)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SplatentError) else f"{type(exc).__name__}: {text}"


def _pose(camera: Camera, distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(position, look_at, up)`` of ``camera`` for viser's orbit controls, orbiting ``distance`` ahead."""
    return camera.center, camera.center + camera.forward * distance, -camera.camtoworld[:3, 1]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """viser prints a panel when it starts and a line when it stops, on stdout; the caller's ``say`` tells where the
    viewer listens instead (this package draws nothing to a terminal itself)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _frustum_size(cameras: list[Camera], radius: float) -> float:
    """Frustums a third of the median distance between neighbouring cameras deep: they never overlap, and the ones
    beside the camera do not fill the picture."""
    if len(cameras) < 2:
        return 0.1 * radius
    centres = np.stack([c.center for c in cameras])
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = float(np.median(distances.min(axis=1)))
    return nearest / 3 if nearest > 1e-9 else 0.1 * radius


class ViewerSession:
    """One browser client: its controls, its camera frustums and its render thread."""

    def __init__(self, viewer: "SceneViewer", client: Any):
        self.viewer, self.client, self.scene = viewer, client, viewer.scene
        self.frames = 0
        self.last_frame: ViewFrame | None = None
        self.last_error: str | None = None
        self._drawn = threading.Condition()
        self._scores: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
        self._build_gui()
        self._add_frustums()
        self.worker = FrameWorker(self._draw, self._show_error, name=f"splatent-view-{client.client_id}")
        client.camera.on_update(lambda _: self.worker.wake())
        self.worker.wake()

    # ----------------------------------------------------------------- controls

    def _build_gui(self) -> None:
        gui, scene, config = self.client.gui, self.scene, self.viewer.config
        modes = MODES if scene.enhancer is not None else MODES[:1]
        with gui.add_folder("View"):
            self.mode = gui.add_dropdown("mode", modes, initial_value=config.mode,
                                         hint="decoded render, enhanced render, or the two side by side")
            self.resolution = gui.add_slider("resolution scale", min=MIN_SCALE, max=1.0, step=0.05,
                                             initial_value=config.resolution_scale,
                                             hint=f"frame size: the canvas times this, longest side at most "
                                                  f"{self.viewer.max_side} px")
            choices = [str(k) for k in TOP_K_CHOICES if k <= len(scene.train)]
            default_k = str(scene.top_k) if str(scene.top_k) in choices else choices[0]
            self.top_k = gui.add_dropdown("top_k", choices, initial_value=default_k,
                                          disabled=scene.enhancer is None,
                                          hint="references: the nearest training views (the enhancer was trained "
                                               f"with {scene.top_k})")
            self.show_cameras = gui.add_checkbox("show cameras", True,
                                                 hint="training views blue, test views orange; click one to go there")
            self.snap_train = gui.add_button("nearest training view")
            self.snap_test = gui.add_button("nearest test view", disabled=not scene.test)
        with gui.add_folder("Readout"):
            self.stats = gui.add_markdown("waiting for the first frame")
            self.metrics = gui.add_markdown(self._metrics_hint())
            self.status = gui.add_markdown("")
        for handle in (self.mode, self.resolution, self.top_k):
            handle.on_update(lambda _: self.worker.wake())
        self.show_cameras.on_update(lambda event: self._set_frustums_visible(event.target.value))
        self.snap_train.on_click(lambda _: self.go_to(nearest_view(self.browser_camera(), scene.train)))
        self.snap_test.on_click(lambda _: self.go_to(nearest_view(self.browser_camera(), scene.test)))

    def _metrics_hint(self) -> str:
        return "metrics: go to a test view (orange) to score it" if self.scene.test else "metrics: the fit has no test views"

    def _add_frustums(self) -> None:
        scene = self.scene
        size = self.viewer.frustum_size
        self.frustums: dict[str, Any] = {}
        self._inside: str | None = None  # the view whose frustum is hidden: the camera stands in it
        for group, cameras, colour in (("train", scene.train, TRAIN_COLOUR), ("test", scene.test, TEST_COLOUR)):
            for cam in cameras:
                wxyz, position, fov = browser_pose(cam)
                handle = self.client.scene.add_camera_frustum(
                    f"/cameras/{group}/{cam.stem}", fov=fov, aspect=cam.width / cam.height, scale=size,
                    thickness=2.0, thickness_units="screen", color=colour, wxyz=wxyz, position=position)
                handle.on_click(lambda _, cam=cam: self.go_to(cam))
                self.frustums[cam.stem] = handle

    def _set_frustums_visible(self, visible: bool) -> None:
        for stem, handle in self.frustums.items():
            handle.visible = visible and stem != self._inside

    def _stand_in(self, view: Camera | None) -> None:
        """Hide the frustum of the view the camera stands on (it would frame the whole picture), show the others."""
        stem = view.stem if view is not None else None
        if stem != self._inside:
            self._inside = stem
            self._set_frustums_visible(bool(self.show_cameras.value))

    # ----------------------------------------------------------------- camera

    def browser_camera(self, width: int | None = None, height: int | None = None) -> Camera:
        """The browser's camera now, as an image camera of ``width x height`` (default: the canvas)."""
        cam = self.client.camera
        width = width or max(1, cam.image_width)
        height = height or max(1, cam.image_height)
        return browser_camera(cam.wxyz, cam.position, cam.fov, width, height)

    def go_to(self, camera: Camera) -> None:
        """Put the browser's camera where ``camera`` is (its pose and vertical field of view)."""
        wxyz, position, fov = browser_pose(camera)
        with self.client.atomic():
            self.client.camera.fov = fov
            self.client.camera.wxyz = wxyz
            self.client.camera.position = position

    # ----------------------------------------------------------------- frames

    def _draw(self) -> None:
        # The camera is read as it is now; a message arriving between two reads tears one frame at worst, and that
        # message has woken this thread for the next one.
        cam = self.client.camera
        width, height = frame_size(cam.image_width, cam.image_height, float(self.resolution.value),
                                   self.viewer.max_side)
        camera = self.browser_camera(width, height)
        view = matching_view(camera, self.scene.train + self.scene.test)
        if view is not None:  # named after the view it stands on, so that view is never its own reference
            camera = dataclasses.replace(camera, name=view.name)
        mode, top_k = str(self.mode.value), int(self.top_k.value)
        with self.viewer.render_lock:
            frame = render_frame(self.scene, latent_resolution(camera), mode, top_k)
        if self.worker.stopping:  # the client left while this frame was drawn
            return
        self.client.scene.set_background_image(frame.image, format="jpeg",
                                               jpeg_quality=self.viewer.config.jpeg_quality)
        parts = [f"{k} {1000 * frame.seconds[k]:.0f}" for k in ("render", "enhance", "decode") if k in frame.seconds]
        self.stats.content = (f"**frame {1000 * frame.seconds['total']:.0f} ms** ({' · '.join(parts)} ms) · "
                              f"{width}×{height} px, {mode}"
                              + (f" · refs {', '.join(frame.references)}" if frame.references else ""))
        self._stand_in(view)
        self._show_metrics(view, top_k)
        if self.last_error is not None:
            self.last_error = None
            self.status.content = ""
        with self._drawn:
            self.frames += 1
            self.last_frame = frame
            self._drawn.notify_all()

    def _show_metrics(self, view: Camera | None, top_k: int) -> None:
        if view is None or view.stem not in {c.stem for c in self.scene.test}:
            self.metrics.content = self._metrics_hint()
            return
        key = (view.stem, top_k)
        if key not in self._scores:
            try:
                with self.viewer.render_lock:
                    self._scores[key] = view_scores(self.scene, view.stem, top_k)
            except Exception as exc:  # the frame is drawn; only its scores are missing (a photo gone, say)
                logger.warning("view: scoring test view %s failed: %s", view.stem, _one_line(exc))
                self.metrics.content = f"test view {view.stem}: no metrics ({_one_line(exc)})"
                return
        rows = " · ".join(f"{kind} **{s['psnr']:.2f} dB** / SSIM {s['ssim']:.3f}" for kind, s in self._scores[key].items())
        self.metrics.content = f"test view {view.stem}: {rows}"

    def _show_error(self, exc: BaseException) -> None:
        self.last_error = _one_line(exc)
        logger.warning("view: a frame failed: %s", self.last_error,
                       exc_info=exc if not isinstance(exc, SplatentError) else None)
        self.status.content = f"**frame failed**: {self.last_error}"
        with self._drawn:
            self._drawn.notify_all()

    def wait_for_frame(self, after: int = 0, timeout: float = 60.0) -> ViewFrame:
        """The first frame drawn after ``after`` frames (for tests and scripts); ``TimeoutError`` if none comes."""
        deadline = time.monotonic() + timeout
        with self._drawn:
            while self.frames <= after:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no frame after {after} in {timeout:.0f} s (last error: {self.last_error})")
                self._drawn.wait(left)
            assert self.last_frame is not None
            return self.last_frame

    def close(self) -> None:
        self.worker.stop()


class SceneViewer:
    """A viser server showing ``scene``; ``start()`` it, open :attr:`url`, ``stop()`` it (or use it as a context
    manager). :attr:`sessions` holds the connected clients' :class:`ViewerSession` by client id."""

    def __init__(self, scene: LatentScene, config: ViewerConfig | None = None):
        self.scene = scene
        self.config = config or ViewerConfig()
        self.config.check(scene.enhancer is not None)
        start = self.config.start_view
        if start is not None and start not in scene.cameras:
            names = sorted(scene.cameras)
            raise SplatentError(f"--view {start}: the fit has no such view; its views: {', '.join(names[:8])}"
                                + (f", ... ({len(names)} in all)" if len(names) > 8 else ""))
        self.max_side = self.config.max_side or MAX_SIDE.get(scene.device.type, MAX_SIDE["cpu"])
        self.radius = camera_radius(scene.train + scene.test)
        self.frustum_size = _frustum_size(scene.train + scene.test, self.radius)
        self.render_lock = threading.Lock()
        self.sessions: dict[int, ViewerSession] = {}
        self._sessions_lock = threading.Lock()
        self.server = None

    @property
    def port(self) -> int:
        return self.server.get_port()

    @property
    def url(self) -> str:
        host = self.config.host
        return f"http://{'localhost' if host in ('0.0.0.0', '::', '') else host}:{self.port}"

    def start(self) -> "SceneViewer":
        import viser

        with _quiet():
            self.server = viser.ViserServer(host=self.config.host, port=self.config.port, label="Splatent",
                                            verbose=False)
        cameras = self.scene.train + self.scene.test
        up = -np.mean([c.camtoworld[:3, 1] for c in cameras], axis=0)
        if np.linalg.norm(up) > 1e-6:
            self.server.scene.set_up_direction(tuple(up / np.linalg.norm(up)))
        first = self.scene.cameras[self.config.start_view] if self.config.start_view else self.scene.train[0]
        # Orbit around the point of the first view's axis nearest the cameras' centroid: for cameras around an
        # object, the object.
        centroid = np.mean([c.center for c in cameras], axis=0)
        ahead = float((centroid - first.center) @ first.forward)
        position, look_at, up_direction = _pose(first, ahead if ahead > 0.05 * self.radius else self.radius)
        initial = self.server.initial_camera
        initial.position, initial.look_at, initial.up = position, look_at, up_direction
        initial.fov = browser_pose(first)[2]
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        return self

    def _connect(self, client: Any) -> None:
        try:
            session = ViewerSession(self, client)
        except Exception as exc:  # a client that left while its panel was built
            logger.warning("view: could not set up client %s: %s", client.client_id, _one_line(exc))
            return
        with self._sessions_lock:
            self.sessions[client.client_id] = session
        server = self.server
        if server is None or client.client_id not in server.get_clients():  # it left while its panel was built
            self._disconnect(client)

    def _disconnect(self, client: Any) -> None:
        with self._sessions_lock:
            session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.close()

    def stop(self) -> None:
        with self._sessions_lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()
        if self.server is not None:
            with _quiet():
                self.server.stop()
            self.server = None

    def __enter__(self) -> "SceneViewer":
        return self.start() if self.server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_viewer(
    model_dir: str | Path,
    enhancer: str | Path | None = None,
    config: ViewerConfig | None = None,
    device: str = "auto",
    backend: str = "auto",
    say: Callable[[str], None] = print,
    until: threading.Event | None = None,
) -> None:
    """Open ``model_dir`` (refusing a bad folder before anything listens), serve it until Ctrl-C, SIGTERM or
    ``until`` is set, then stop the server and its threads."""
    (config or ViewerConfig()).check(enhancer is not None)
    scene = open_latent_scene(model_dir, enhancer, device=device, backend=backend)
    viewer = SceneViewer(scene, config)
    stop = until if until is not None else threading.Event()
    with viewer, _stop_on_sigterm(stop):
        say(f"viewing {model_dir} at {viewer.url} ({scene.device.type}, {scene.backend} rasteriser, frames up to "
            f"{viewer.max_side} px{', enhancer ' + str(enhancer) if enhancer else ''}); Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the way to stop it, not an error
            while not stop.wait(0.5):  # a timed wait, so the main thread sees Ctrl-C
                continue
    say("viewer stopped")


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM (``kill``, a service manager) sets ``stop``, as Ctrl-C ends the wait: either way the server and its
    threads are stopped before the process ends. Signals reach only the main thread; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
