"""Video / webcam demo: detect, track and label every face per frame, with per-person smoothing; optionally
a table of every face in every frame.

    python final_video_demo.py                         # shipped model; webcam 0 (or a built-in clip when none)
    python final_video_demo.py --video in.mp4 --output out.mp4 --smooth mean --window 15
    python final_video_demo.py --video long.mp4 --output none --table faces.csv   # table only, flat memory
    python final_video_demo.py --camera 1 --display    # live window (needs a GUI build of OpenCV)

Frames are read, labelled and written one at a time (memory stays flat whatever the video's length);
a progress bar shows the rate and, for files, the time left. No TensorFlow is imported unless --run or
a .keras / .hdf5 --weights is given.
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # no camera-probing warnings on the console
import utils  # noqa: E402,F401  (TensorFlow environment switches, for the --run path)


def parser() -> argparse.ArgumentParser:
    from utils.demo import add_model_flags

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", default=None, help="input video file")
    src.add_argument("--camera", type=int, default=None, help="camera index (none: camera 0, or a built-in clip)")
    add_model_flags(p)
    p.add_argument("--output", default=None,
                   help="annotated video, or 'none' for no video (none given: demo_output/<name>_annotated.mp4)")
    p.add_argument("--table", default=None, help="one row per face per frame to this .csv or .jsonl file")
    p.add_argument("--display", action="store_true", help="show a live window (q quits)")
    p.add_argument("--smooth", default="mode", choices=("mode", "mean", "none"),
                   help="per-track smoothing of the labels over --window frames")
    p.add_argument("--window", type=int, default=10, help="frames in each track's smoothing window")
    p.add_argument("--max_frames", type=int, default=None, help="stop after this many frames (none: all)")
    p.add_argument("--progress", default="auto", choices=("auto", "on", "off"),
                   help="progress bar with rate and time left (auto: when stderr is a terminal)")
    return p


def open_capture(a):
    import cv2

    from utils.demo import DemoError

    if a.video:
        cap = cv2.VideoCapture(a.video)
        if not cap.isOpened():
            raise DemoError(f"cannot read video: {a.video}")
        return cap, Path(a.video).stem
    cap = cv2.VideoCapture(a.camera)
    if cap.isOpened():
        return cap, f"camera{a.camera}"
    if a.camera_given:
        raise DemoError(f"camera {a.camera} cannot be opened (no such device?); use --video PATH")
    from utils.demo_samples import moving_faces_video

    Path("demo_output").mkdir(exist_ok=True)
    clip = Path("demo_output") / "sample_clip.mp4"
    moving_faces_video(str(clip))
    print(f"no camera available: running on a built-in sample clip instead ({clip})")
    return cv2.VideoCapture(str(clip)), "sample_clip"


def check(a) -> None:
    """Every flag before anything loads."""
    from utils.demo import DemoError

    if a.video and not Path(a.video).is_file():
        raise DemoError(f"--video {a.video}: no such file")
    for flag, path in (("--output", a.output), ("--table", a.table)):
        if path and path != "none" and not Path(path).resolve().parent.is_dir():
            raise DemoError(f"{flag} {path}: folder {Path(path).resolve().parent} does not exist")
    if a.output and a.output != "none" and not Path(a.output).suffix:
        raise DemoError(f"--output {a.output}: a video file needs a suffix OpenCV writes, such as annotated.mp4")
    if a.table and Path(a.table).suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise DemoError(f"--table {a.table}: a table is a .csv or a .jsonl file")
    if a.window < 1 or (a.max_frames is not None and a.max_frames < 1):
        raise DemoError("--window and --max_frames must be positive")


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    a.camera_given = a.camera is not None
    a.camera = a.camera or 0
    from utils.demo import DemoError
    from utils.faces import FaceError

    table = None
    try:
        check(a)
        import cv2

        from utils.demo import FaceTracker, apply_model_flags, face_records, load_predictor
        from utils.drawing import draw
        from utils.faces import detect, make_detector
        from utils.tables import FaceTable

        detector = make_detector(a.detector, a.min_face)
        predictor = apply_model_flags(load_predictor(a.run, a.weights, a.runs_dir), a)
        print(f"model: {predictor.source} (tasks: {', '.join(predictor.tasks)}); detector: {a.detector}")
        cap, name = open_capture(a)
        names = {t: predictor.class_names[t] for t in predictor.tasks}
        tracker = FaceTracker(a.window, smooth="mode" if a.smooth == "none" else a.smooth)
        fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if a.video else 0
        total = min(total, a.max_frames) if a.max_frames and total else (total or a.max_frames)
        out_path = None if a.output == "none" else Path(a.output or Path("demo_output") / f"{name}_annotated.mp4")
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        table = FaceTable(a.table, names) if a.table else None
        from tqdm import tqdm

        bar = tqdm(total=total or None, unit="frame", file=sys.stderr, dynamic_ncols=True,
                   disable={"auto": None, "on": False, "off": True}[a.progress])
        writer, frames, faces, t0 = None, 0, 0, time.perf_counter()
        while a.max_frames is None or frames < a.max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            records = tracker.update(face_records(predictor, rgb, detect(detector, rgb)), names)
            if table is not None:
                table.write(name, frames, frames / fps_in, records)
            frames += 1
            faces += len(records)
            bar.update(1)
            if out_path is not None or a.display:
                shown = cv2.cvtColor(draw(rgb, records, "label" if a.smooth == "none" else "smoothed"),
                                     cv2.COLOR_RGB2BGR)
                if out_path is not None:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps_in,
                                                 (shown.shape[1], shown.shape[0]))
                        if not writer.isOpened():
                            raise DemoError(f"--output {out_path}: OpenCV cannot write this video file (its suffix "
                                            "or the folder's permissions); try annotated.mp4")
                    writer.write(shown)
                if a.display:
                    try:
                        cv2.imshow("faces", shown)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
                    except cv2.error:
                        print("note: this OpenCV build has no GUI; continuing without --display", file=sys.stderr)
                        a.display = False
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
        if frames == 0:
            raise DemoError(f"no frame could be read from {a.video or f'camera {a.camera}'}")
    except (DemoError, FaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions: one line, no traceback
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        if table is not None:
            table.close()
    elapsed = time.perf_counter() - t0
    print(f"{frames} frames, {faces} faces, {frames / elapsed:.1f} frames/s, {tracker.next_id} tracks"
          + (f"; annotated video: {out_path.resolve()}" if out_path is not None else "")
          + (f"; table: {Path(a.table).resolve()} ({table.rows} rows)" if table is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
