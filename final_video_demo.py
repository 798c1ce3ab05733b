"""Video / webcam demo: detect, track and label every face per frame, with per-person smoothing.

    python final_video_demo.py                         # shipped model; webcam 0 (or a built-in clip when none)
    python final_video_demo.py --video in.mp4 --output out.mp4 --smooth mean --window 15
    python final_video_demo.py --camera 1 --display    # live window (needs a GUI build of OpenCV)
"""
import argparse
import sys
import time
from pathlib import Path

import utils  # noqa: F401  (TensorFlow environment switches)


def open_capture(a):
    import cv2

    from utils.demo import DemoError

    if a.video:
        if not Path(a.video).is_file():
            raise DemoError(f"video not found: {a.video}")
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", default=None, help="input video file")
    src.add_argument("--camera", type=int, default=None, help="camera index (default 0)")
    p.add_argument("--run", default=None, help="run folder (its best.keras), or 'latest' for the newest run")
    p.add_argument("--weights", default=None, help=".keras model, or a released mini-Xception .hdf5")
    p.add_argument("--runs_dir", default="runs", help="where --run latest looks")
    p.add_argument("--output", default=None, help="annotated video (default: demo_output/<name>_annotated.mp4)")
    p.add_argument("--display", action="store_true", help="show a live window (q quits)")
    p.add_argument("--detector", default="mtcnn", choices=("mtcnn", "dlib", "haar"))
    p.add_argument("--min_face", type=int, default=40, help="smallest face side (pixels) to look for")
    p.add_argument("--smooth", default="mode", choices=("mode", "mean"), help="per-track smoothing")
    p.add_argument("--window", type=int, default=10, help="frames in each track's smoothing window")
    p.add_argument("--max_frames", type=int, default=None)
    p.add_argument("--margin", type=float, default=0.15, help="border around boxes of faces without landmarks")
    a = p.parse_args(argv)
    a.camera_given = a.camera is not None
    a.camera = a.camera or 0

    import cv2

    from utils.demo import DemoError, FaceTracker, draw, face_records, load_predictor
    from utils.faces import FaceError, detect, make_detector

    try:
        predictor = load_predictor(a.run, a.weights, a.runs_dir)
        predictor.margin = a.margin
        print(f"model: {predictor.source} (tasks: {', '.join(predictor.tasks)})")
        cap, name = open_capture(a)
        detector, tracker = make_detector(a.detector, a.min_face), FaceTracker(a.window, smooth=a.smooth)
        fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
        out_path = Path(a.output or Path("demo_output") / f"{name}_annotated.mp4")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        writer, frames, faces, t0 = None, 0, 0, time.perf_counter()
        while a.max_frames is None or frames < a.max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            records = tracker.update(face_records(predictor, rgb, detect(detector, rgb)),
                                     {t: predictor.class_names[t] for t in predictor.tasks})
            frames += 1
            faces += len(records)
            fps = frames / (time.perf_counter() - t0)
            shown = cv2.cvtColor(draw(rgb, records, "smoothed"), cv2.COLOR_RGB2BGR)
            cv2.putText(shown, f"{fps:.1f} fps", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 255, 255), 2)
            if writer is None:
                writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*"mp4v"), fps_in,
                                         (shown.shape[1], shown.shape[0]))
            writer.write(shown)
            if a.display:
                try:
                    cv2.imshow("faces", shown)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
                except cv2.error:
                    print("note: this OpenCV build has no GUI; continuing without --display")
                    a.display = False
        cap.release()
        if writer is not None:
            writer.release()
        if frames == 0:
            raise DemoError(f"no frame could be read from {a.video or f'camera {a.camera}'}")
    except (DemoError, FaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{frames} frames, {faces} faces, {frames / (time.perf_counter() - t0):.1f} fps, "
          f"{len(set(range(tracker.next_id)))} tracks; annotated video: {out_path.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
