"""The rendered-phantom cache verifies what it returns: a truncated, bit-flipped, swapped or unverifiable PNG is
reported in one warning and rendered again (the same pixels as a fresh render); an unwritable cache renders in
memory after one warning; the rendering pool's workers exit when their parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrbench.cache import CacheWarning, reset_unusable
from cxrbench.data import iu_phantom

from reliability_harness import PYTHON, subprocess_env


@pytest.fixture
def phantoms(cache_dir):
    """iu-phantom's first three test studies, rendered into this test's cache (one worker)."""
    ds = iu_phantom.load(split="test", render=False, progress=False).subset(3)
    assert iu_phantom.render_missing(ds.studies, workers=1, progress=False) == len(ds.images)
    fresh = {im.image_id: np.asarray(ds.load_image(im)) for im in ds.images}
    return ds, fresh


def load_all(ds) -> tuple[dict, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pixels = {im.image_id: np.asarray(ds.load_image(im)) for im in ds.images}
    return pixels, [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]


def truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def flip_idat_bit(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.index(b"IDAT") + 200
    raw[at] ^= 0x04
    path.write_bytes(bytes(raw))


def strip_checksum(path: Path) -> None:
    with Image.open(path) as im:
        im.load()
        im.save(path, format="PNG")  # same pixels, no checksum chunk


def not_a_png(path: Path) -> None:
    path.write_bytes(b"<html>not an image</html>\n")


@pytest.mark.parametrize("damage", [truncate, flip_idat_bit, strip_checksum, not_a_png, "swapped"])
def test_damaged_phantom_is_reported_and_rendered_again(damage, phantoms):
    ds, fresh = phantoms
    first, second = ds.images[0], ds.images[1]
    if damage == "swapped":  # a valid, checksummed PNG of another image under this name
        Path(first.source).write_bytes(Path(second.source).read_bytes())
    else:
        damage(Path(first.source))
    pixels, messages = load_all(ds)
    assert len(messages) == 1 and str(first.source) in messages[0] and "rendering it again" in messages[0]
    assert all(np.array_equal(pixels[k], fresh[k]) for k in fresh)
    _, again = load_all(ds)
    assert again == []  # written again, and valid


def test_damaged_header_is_found_before_rendering_and_rendered_in_the_pool(phantoms):
    ds, fresh = phantoms
    not_a_png(Path(ds.images[0].source))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert iu_phantom.render_missing(ds.studies, workers=1, progress=False) == 1
    assert len(caught) == 1 and "damaged" in str(caught[0].message)
    pixels, messages = load_all(ds)
    assert messages == [] and all(np.array_equal(pixels[k], fresh[k]) for k in fresh)


def test_unwritable_render_cache_renders_in_memory_with_one_warning(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder\n")
    monkeypatch.setenv("CXRBENCH_CACHE", str(blocker / "cache"))
    reset_unusable()
    try:
        ds = iu_phantom.load(split="test", render=False, progress=False).subset(2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            iu_phantom.render_missing(ds.studies, workers=1, progress=False)
            pixels = [np.asarray(ds.load_image(im)) for im in ds.images]
        assert len(caught) == 1 and "continuing without the cache" in str(caught[0].message)
        assert all(p.shape == (512, 512) and p.std() > 0 for p in pixels)
    finally:
        reset_unusable()


WORKERS = textwrap.dedent("""
    import os, sys
    from cxrbench.data import iu_phantom
    ds = iu_phantom.load(split="test", render=False, progress=False).subset(40)
    print(os.getpid(), flush=True)
    iu_phantom.render_missing(ds.studies, workers=2, progress=False)
""")


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the pool workers")
def test_rendering_workers_exit_when_the_parent_is_killed(tmp_path):
    proc = subprocess.Popen([PYTHON, "-c", WORKERS], env=subprocess_env(tmp_path / "cache"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        pid = int(proc.stdout.readline())
        deadline = time.monotonic() + 60
        while len(workers := children(pid)) < 2:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the pool never started"
            time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(w) for w in workers), "pool workers outlived their killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        for w in workers:  # a failing run must not leave orphans behind either
            if alive(w):
                os.kill(w, signal.SIGKILL)
