"""Fault scenarios of the files area (issue 18, point 7): the images folder, the OCR cache, outputs, headers.

Environment faults rather than hostile bytes. Every scenario runs the real ``specread predict``
as a subprocess in its own session, with a timeout, over a few synthetic labels
(:func:`specread.synth.make_dataset`) and the fault; its process group is killed at the end.
Answers are judged against a fault-free run of the same images (``wrong_answers``), rows against
the input (``rows_lost``), and processes of the run's group still alive once its main process has
ended are ``orphans``. Peak RSS is the largest ``VmHWM`` of the run's tree (``common.TreePeak``).

Families:

* ``images_folder``: a FIFO, a link to ``/dev/zero`` or ``/dev/urandom``, a sparse 5 GB file, a
  folder, a socket, a dangling link, a link loop, a procfs file (size 0, gives bytes), a file that
  grows while the run reads, and (where ``/dev/fuse`` can be mounted) a file whose read never
  returns. Each named ``.jpg`` among real images: handled when the run finishes, every row is
  there, the other answers equal the fault-free run and the fault is listed as its image's failure.
* ``ocr_cache``: the cache on a full tmpfs, on a read-only one (empty, and filled then remounted
  read-only), under a file (the folder cannot be made), and filled then corrupted (wrong
  structure, absurd values, NaN, deep nesting, garbage, a FIFO or a folder as an entry, a sparse
  1 GB entry). Handled when the answers equal an uncached run with no image failed, and (full,
  read-only) at most one "cannot be written" warning per process.
* ``output_files``: an output path that is a symbolic link (new, dangling, with ``--overwrite``), and
  the output's mode under umask 027. Handled when the link stays and its target has the final rows,
  and the output and job record are 0640.
* ``input_header``: a header naming ``entity_name``, ``index`` or ``image_link`` twice (refused, exit
  2, one clear line, no output), and trailing empty header names (accepted).

Usage:
    python -m benchmarks.faults_files [--quick] [--timeout 60] [--work DIR]
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import TreePeak, child_env, fault_row, faults_main, kill_group, specread_command
from benchmarks.faults_fuse import stalled_file

__all__ = ["main", "run_faults"]

HEADER = ["index", "image_link", "group_id", "entity_name"]
LINK = "https://example.invalid/images/"


@dataclass
class Ran:
    """A finished (or killed) ``specread`` run."""

    returncode: int
    hung: bool
    peak_rss_mb: float
    wall_s: float
    stderr: str
    orphans: int


def _group(pgid: int) -> list[int]:
    """Live processes of process group ``pgid`` (zombies are not alive)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def run(cmd: list[str], timeout: float, umask: int | None = None, on_timeout: Callable[[], None] | None = None) -> Ran:
    """Run ``cmd`` in its own session with a timeout; count what of its group outlives it, then kill the group.

    ``on_timeout`` runs before the kill (a process stuck in an uninterruptible read cannot die until
    its file system lets the read go).
    """
    start = time.monotonic()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=child_env(),
            start_new_session=True,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        )
        peak = TreePeak(proc.pid)
        killed: list[bool] = []

        def kill() -> None:  # at the timeout: the run is hung
            killed.append(True)
            if on_timeout is not None:
                on_timeout()
                time.sleep(1.0)  # let the process end by itself once the fault is gone
            kill_group(proc.pid)

        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, _ = os.wait4(proc.pid, 0)
        timer.cancel()
        peak_mb = peak.stop()
        hung = bool(killed)
        wall = time.monotonic() - start
        time.sleep(0.3)  # a worker the parent did not end is still there after it
        orphans = 0 if hung else len(_group(proc.pid))
        kill_group(proc.pid)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return Ran(os.waitstatus_to_exitcode(status), hung, peak_mb, round(wall, 2), text, orphans)


def _answers(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return {r.get("index", ""): r.get("prediction", "") for r in csv.DictReader(fh)}
    except (OSError, csv.Error):
        return {}


def _failures(output: Path) -> dict[str, str]:
    """image file name -> failure reason, from the run's ``<output>.failures.csv``."""
    try:
        with open(output.with_name(f"{output.stem}.failures.csv"), newline="", encoding="utf-8") as fh:
            return {Path(r["image_link"]).name: r["reason"] for r in csv.DictReader(fh)}
    except (OSError, csv.Error, KeyError):
        return {}


def _write_input(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


class Bench:
    """The shared dataset, its fault-free answers, and how one scenario runs and is judged."""

    def __init__(self, work: Path, timeout: float) -> None:
        from specread.synth import make_dataset

        self.work, self.timeout = work, timeout
        self.base = work / "base"
        make_dataset(self.base, n_images=4, seed=7)
        with open(self.base / "input.csv", newline="", encoding="utf-8") as fh:
            self.rows = [[r[k] for k in HEADER] for r in csv.DictReader(fh)]
        ran = self.predict(self.base, self.base / "input.csv", work / "reference.csv", "--no-cache")
        self.reference = _answers(work / "reference.csv")
        self._walls = {1: ran.wall_s}
        if ran.returncode != 0 or len(self.reference) != len(self.rows):
            raise RuntimeError(f"the fault-free run failed: exit {ran.returncode}: {ran.stderr[-500:]}")

    def wall_with(self, workers: int) -> float:
        """Seconds a fault-free run takes with ``workers`` (measured once)."""
        if workers not in self._walls:
            out = self.work / f"reference_{workers}_workers.csv"
            ran = self.predict(self.base, self.base / "input.csv", out, "--no-cache", workers=workers)
            self._walls[workers] = ran.wall_s
        return self._walls[workers]

    def folder(self, name: str) -> Path:
        """A fresh case folder with a copy of the dataset's images in ``images/``."""
        case = self.work / name
        shutil.copytree(self.base / "images", case / "images")
        return case

    def predict(
        self,
        case: Path,
        input_csv: Path,
        output: Path,
        *extra: str,
        workers: int = 1,
        umask: int | None = None,
        on_timeout: Callable[[], None] | None = None,
    ) -> Ran:
        cmd = [
            *specread_command(),
            "predict",
            str(input_csv),
            "--images",
            str(case / "images"),
            "--output",
            str(output),
        ]
        return run([*cmd, "--workers", str(workers), *extra], self.timeout, umask, on_timeout)

    def judge(self, output: Path, expected: set[str]) -> tuple[int, int]:
        """(wrong answers against the fault-free run, input rows missing from the output)."""
        got = _answers(output)
        wrong = sum(1 for i, answer in self.reference.items() if i in got and got[i] != answer)
        return wrong, len(expected - set(got))


def _result(family: str, case: str, ran: Ran | None, handled: bool, detail: str, wrong: int = 0, lost: int = 0) -> dict:
    return fault_row(
        family,
        case,
        handled and ran is not None and not ran.hung and ran.orphans == 0,
        detail[:300],
        hung=bool(ran and ran.hung),
        wrong_answers=wrong,
        orphans=ran.orphans if ran else 0,
        rows_lost=lost,
        peak_rss_mb=ran.peak_rss_mb if ran else None,
    )


# -- the images folder ------------------------------------------------------------------------------------------------
def _grow(path: Path, stop: threading.Event, rate: int = 10 * 2**20, limit: int = 80 * 2**20) -> None:
    """Append to ``path`` at ``rate`` bytes/s until ``stop`` or ``limit`` (a file written while it is read)."""
    with open(path, "ab") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        while not stop.is_set() and fh.tell() < limit:
            fh.write(os.urandom(rate // 20))
            fh.flush()
            stop.wait(0.05)


@contextmanager
def _odd_entry(case: str, path: Path) -> Iterator[Callable[[], None] | None]:
    """Put the fault ``case`` at ``path`` for the block; it gets what ends the fault at a timeout (or None)."""
    stop = threading.Event()
    holder: list[socket.socket] = []
    writer: threading.Thread | None = None
    fuse = None
    abort: Callable[[], None] | None = None
    if case == "fifo_jpg":
        os.mkfifo(path)
    elif case in ("dev_zero_link", "dev_urandom_link"):
        path.symlink_to("/dev/zero" if case == "dev_zero_link" else "/dev/urandom")
    elif case == "sparse_5gb":
        with open(path, "wb") as fh:
            fh.truncate(5 * 1024**3)
    elif case == "directory":
        path.mkdir()
    elif case == "socket":
        holder.append(socket.socket(socket.AF_UNIX))
        holder[0].bind(str(path))
    elif case == "dangling_link":
        path.symlink_to(path.with_name("nowhere.jpg"))
    elif case == "link_loop":
        path.symlink_to(path.with_name("loop_b.jpg"))
        path.with_name("loop_b.jpg").symlink_to(path)
    elif case == "procfs_link":
        path.symlink_to("/proc/self/status")
    elif case == "growing_file":
        writer = threading.Thread(target=_grow, args=(path, stop), daemon=True)
        writer.start()
    elif case == "stalled_read":
        fuse = stalled_file(path.parent.parent / "fuse")
        target, abort = fuse.__enter__()
        path.symlink_to(target)
    try:
        yield abort
    finally:
        stop.set()
        if writer is not None:
            writer.join(5)
        for sock in holder:
            sock.close()
        if fuse is not None:
            fuse.__exit__(None, None, None)


IMAGE_CASES: dict[str, str] = {
    "fifo_jpg": "not a regular file",
    "dev_zero_link": "not a regular file",
    "sparse_5gb": "file too large",
    "directory": "not a regular file",
    "socket": "not a regular file",
    "dangling_link": "file not found",
    "link_loop": "Too many levels of symbolic links",
    "dev_urandom_link": "not a regular file",
    "procfs_link": "",  # read (a few hundred bytes), then found not to be an image
    "growing_file": "",  # too large or truncated, depending on when it is read
    "stalled_read": "read timed out",
}
"""Fault -> what its failure must say ("": any failure)."""


def _refusal_ms(path: Path) -> float | None:
    """Milliseconds :func:`read_image_bytes` takes to refuse ``path`` in this process (None: it read it)."""
    from specread.errors import ImageLoadError
    from specread.io.images import read_image_bytes

    start = time.perf_counter()
    try:
        read_image_bytes(path, timeout=5.0)
    except ImageLoadError:
        return round((time.perf_counter() - start) * 1000, 2)
    return None


def image_case(bench: Bench, case: str) -> dict:
    folder = bench.folder(f"images_{case}")
    name = f"{case}.jpg"
    rows = [*bench.rows, [f"fault_{case}", LINK + name, "0", "item_weight"]]
    input_csv = _write_input(folder / "input.csv", rows)
    output = folder / "out.csv"
    try:
        with _odd_entry(case, folder / "images" / name) as abort:
            start = time.time()
            ran = bench.predict(folder, input_csv, output, "--no-cache", workers=2, on_timeout=abort)
            refused_ms = _refusal_ms(folder / "images" / name) if abort is None else None
    except OSError as exc:  # this machine cannot make the fault (no FUSE...)
        return _result("images_folder", case, None, False, f"skipped: cannot set up the fault ({exc})")
    wrong, lost = bench.judge(output, {r[0] for r in rows})
    reason = _failures(output).get(name, "")
    listed = bool(reason) and IMAGE_CASES[case] in reason
    detail = f"{reason.split(': ', 1)[-1] or 'not listed as a failure'}; "
    if refused_ms is not None:
        detail += f"refused in {refused_ms} ms; "
    detail += f"run {ran.wall_s} s (fault-free {bench.wall_with(2)} s, 2 workers)"
    if abort is not None and output.exists():
        detail += f"; output final after {output.stat().st_mtime - start:.1f} s"
        if ran.hung:  # the work is done; the process waits in the kernel for the read it abandoned
            detail += ", the process exits only once the mount lets the abandoned read go (uninterruptible)"
    return _result("images_folder", case, ran, ran.returncode == 0 and listed, detail, wrong, lost)


# -- the OCR cache ----------------------------------------------------------------------------------------------------
@contextmanager
def _tmpfs(mount: Path, size: str = "64k") -> Iterator[Path]:
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        raise OSError(f"mount -t tmpfs failed: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path) -> None:
    """Write to ``folder`` until its file system is full."""
    with suppress(OSError), open(folder / "filler", "wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


def _corrupt(cache: Path, how: str) -> int:
    """Spoil every page under ``cache`` the way ``how`` says; the number spoiled."""
    bad: dict[str, Callable[[Path], None]] = {
        "wrong_structure": lambda p: p.write_text(json.dumps({"pages": [1, 2, 3]})),
        "absurd_values": lambda p: p.write_text(
            json.dumps({"width": -5, "height": 10**15, "tokens": [{"text": "9 kg", "score": 1e308, "quad": [[0]]}]})
        ),
        "non_finite": lambda p: p.write_text('{"width": 10, "height": 10, "tokens": [], "segments": [[NaN, 0, 0, 0]]}'),
        "deep_nesting": lambda p: p.write_text("[" * 200_000 + "]" * 200_000),
        "garbage": lambda p: p.write_bytes(os.urandom(3000)),
        "fifo_entry": lambda p: (p.unlink(), os.mkfifo(p)),
        "directory_entry": lambda p: (p.unlink(), p.mkdir()),
        "sparse_1gb_entry": lambda p: os.truncate(p, 1024**3),
    }
    pages = sorted(cache.rglob("*.json"))
    for page in pages:
        bad[how](page)
    return len(pages)


CACHE_CASES = (
    "full_tmpfs",
    "read_only_tmpfs",
    "cache_under_a_file",
    "read_only_after_filling",
    "wrong_structure",
    "absurd_values",
    "non_finite",
    "deep_nesting",
    "garbage",
    "fifo_entry",
    "directory_entry",
    "sparse_1gb_entry",
)


def cache_case(bench: Bench, case: str) -> dict:
    folder = bench.folder(f"cache_{case}")
    cache, output = folder / "cache", folder / "out.csv"
    expected = {r[0] for r in bench.rows}
    detail = ""
    try:
        if case in ("full_tmpfs", "read_only_tmpfs", "read_only_after_filling"):
            with _tmpfs(cache, "64k" if case == "full_tmpfs" else "16m"):
                if case == "full_tmpfs":
                    _fill(cache)
                elif case == "read_only_after_filling":
                    bench.predict(folder, bench.base / "input.csv", folder / "fill.csv", "--cache-dir", str(cache))
                    detail = f"{len(list(cache.rglob('*.json')))} pages stored before; "
                if case != "full_tmpfs":
                    subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True, capture_output=True)
                ran = bench.predict(folder, bench.base / "input.csv", output, "--cache-dir", str(cache))
        elif case == "cache_under_a_file":
            (folder / "a_file").write_text("not a folder")
            ran = bench.predict(folder, bench.base / "input.csv", output, "--cache-dir", str(folder / "a_file" / "c"))
        else:
            bench.predict(folder, bench.base / "input.csv", folder / "fill.csv", "--cache-dir", str(cache))
            detail = f"{_corrupt(cache, case)} entries spoiled; "
            ran = bench.predict(folder, bench.base / "input.csv", output, "--cache-dir", str(cache))
            valid = sum(1 for p in cache.rglob("*.json") if p.is_file() and _valid_page(p))
            detail += f"{valid} valid afterwards; "
    except (OSError, subprocess.CalledProcessError) as exc:
        return _result("ocr_cache", case, None, False, f"skipped: cannot set up the fault ({exc})")
    wrong, lost = bench.judge(output, expected)
    unreadable = len(_failures(output))
    warned = ran.stderr.count("OCR cache cannot be written")
    handled = ran.returncode == 0 and unreadable == 0 and warned <= 1
    detail += f"{unreadable} images unreadable, {warned} write warning(s), exit {ran.returncode}"
    return _result("ocr_cache", case, ran, handled, detail, wrong, lost)


def _valid_page(path: Path) -> bool:
    from specread.errors import PageFormatError
    from specread.types import OcrPage

    try:
        OcrPage.from_dict(json.loads(path.read_bytes()))
    except (PageFormatError, ValueError, RecursionError, OSError):
        return False
    return True


# -- outputs and headers ----------------------------------------------------------------------------------------------
OUTPUT_CASES = ("symlink_output", "dangling_symlink_output", "symlink_output_overwrite", "mode_under_umask_027")


def output_case(bench: Bench, case: str) -> dict:
    folder = bench.folder(f"output_{case}")
    target = folder / "elsewhere" / "real.csv"
    target.parent.mkdir()
    output, extra, umask = folder / "out.csv", ["--no-cache"], None
    if case == "mode_under_umask_027":
        umask = 0o027
    else:
        if case != "dangling_symlink_output":
            target.write_text("" if case == "symlink_output" else "index,prediction\nstale,1 kg\n")
        output.symlink_to(target)
        if case == "symlink_output_overwrite":
            extra.append("--overwrite")
    ran = bench.predict(folder, bench.base / "input.csv", output, *extra, umask=umask)
    wrong, lost = bench.judge(output, {r[0] for r in bench.rows})
    if umask is not None:
        modes = [stat.S_IMODE(p.stat().st_mode) for p in (output, folder / "out.job.json")]
        ok = modes == [0o640, 0o640]
        detail = f"output and job record modes {', '.join(oct(m) for m in modes)} (plain create: 0o640)"
    else:
        final = (bench.work / "reference.csv").read_text(encoding="utf-8") == target.read_text(encoding="utf-8")
        ok = output.is_symlink() and output.resolve() == target and final
        detail = f"link kept: {output.is_symlink()}; target holds the final rows: {final}"
    return _result("output_files", case, ran, ran.returncode == 0 and ok, detail, wrong, lost)


HEADER_CASES = ("duplicate_entity_name", "duplicate_index", "duplicate_image_link", "trailing_empty_names")


def header_case(bench: Bench, case: str) -> dict:
    folder = bench.folder(f"header_{case}")
    output = folder / "out.csv"
    if case == "trailing_empty_names":
        header, rows = [*HEADER, "", ""], [[*r, "", ""] for r in bench.rows]
    else:
        column = case.removeprefix("duplicate_")
        header = [*HEADER, column]
        rows = [[*r, "item_weight" if column == "entity_name" else "x"] for r in bench.rows]
    input_csv = _write_input(folder / "input.csv", rows, header)
    ran = bench.predict(folder, input_csv, output, "--no-cache")
    if case == "trailing_empty_names":
        wrong, lost = bench.judge(output, {r[0] for r in bench.rows})
        return _result("input_header", case, ran, ran.returncode == 0, f"accepted, exit {ran.returncode}", wrong, lost)
    said = "duplicate column name" in ran.stderr and "Traceback" not in ran.stderr
    ok = ran.returncode == 2 and said and not output.exists()
    lines = [ln.strip(" │|") for ln in ran.stderr.splitlines() if "duplicate" in ln]
    return _result("input_header", case, ran, ok, f"exit {ran.returncode}: {lines[0] if lines else ran.stderr[-200:]}")


# -- the whole area ---------------------------------------------------------------------------------------------------
QUICK = {
    "images_folder": ("fifo_jpg", "sparse_5gb"),
    "ocr_cache": ("full_tmpfs", "deep_nesting"),
    "output_files": ("symlink_output",),
    "input_header": ("duplicate_entity_name",),
}


def run_faults(work: Path, *, quick: bool = False, timeout: float = 60.0) -> list[dict]:
    """Run every scenario of this area under ``work`` (a scratch folder); one dict per scenario."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    bench = Bench(work, timeout)
    families: list[tuple[str, Callable[[Bench, str], dict], tuple[str, ...]]] = [
        ("images_folder", image_case, tuple(IMAGE_CASES)),
        ("ocr_cache", cache_case, CACHE_CASES),
        ("output_files", output_case, OUTPUT_CASES),
        ("input_header", header_case, HEADER_CASES),
    ]
    results = []
    for family, scenario, cases in families:
        for case in QUICK[family] if quick else cases:
            results.append(scenario(bench, case))
    return results


def main(argv: list[str] | None = None) -> list[dict]:
    """Run this module's scenarios and print them as JSON (see :func:`benchmarks.common.faults_main`)."""
    return faults_main(run_faults, __doc__ or "", argv)


if __name__ == "__main__":
    main()
