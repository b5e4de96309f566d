"""What the GPU check's items share: their report, context and helpers.

Every item of ``tests/gpu/gpu_check.py`` gets a :class:`Context` (device,
smoke or full sizes, the shared folder, a scratch folder) and fills a
:class:`Report`: named checks (pass or fail, one line each), figures
(numbers for the summary and the JSON) and notes. A check that raises is
a failed check, and the item goes on with the next one
(:meth:`Report.guard`).

Authors
 * MR-RawNet recipe contributors
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import sys
import time
import traceback

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
for _path in (ROOT, TESTS, TESTS / "integration", TESTS / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

#: Environment variable set for every process of one check run (items,
#: torchrun launchers and their workers), to find and end them all.
TAG_ENV = "GPU_CHECK_TAG"
#: Where the summary goes when ``--out`` is not given.
OUT_ENV = "GPU_CHECK_OUT"
#: The shared folder (``reference/``, ``fixtures/``), as for the tests.
SHARED_ENV = "MR_RAWNET_SHARED"
FIXTURE = pathlib.Path("fixtures") / "mr_rawnet_official"
OFFICIAL_CODE = pathlib.Path("reference") / "official_mr_rawnet"


def find_shared(given=None):
    """The shared folder: ``given``, ``$MR_RAWNET_SHARED``, or beside.

    Looks, in this order, at ``given``, the environment variable
    ``MR_RAWNET_SHARED``, ``<repo>/shared`` (a copy carried along with the
    repository) and ``<repo>/../shared`` (the development layout).

    Arguments
    ---------
    given : str or None
        A path from the command line.

    Returns
    -------
    pathlib.Path or None
        The first candidate that is a folder, or None.

    Example
    -------
    >>> find_shared("/nonexistent/folder") is None or True
    True
    """
    candidates = [given, os.environ.get(SHARED_ENV)]
    candidates += [ROOT / "shared", ROOT.parent / "shared"]
    for path in candidates:
        if path and pathlib.Path(path).is_dir():
            return pathlib.Path(path).resolve()
    return None


@dataclasses.dataclass
class Context:
    """What an item runs with.

    Arguments
    ---------
    device : str
        ``"cuda"``, ``"cuda:0"`` or ``"cpu"``.
    smoke : bool
        Tiny sizes (proves the script works; the figures mean nothing).
    shared : pathlib.Path or None
        The shared folder, if found.
    work : pathlib.Path
        A scratch folder of this item.
    seconds : float
        The item's time limit (items size their work to it).

    Example
    -------
    >>> Context("cpu", True, None, pathlib.Path("/tmp"), 60.0).cuda
    False
    """

    device: str
    smoke: bool
    shared: object
    work: pathlib.Path
    seconds: float

    @property
    def cuda(self):
        """Whether the device is a CUDA device."""
        return str(self.device).startswith("cuda")

    def sync(self):
        """Waits for the device's queued work (no-op on the CPU)."""
        if self.cuda:
            torch.cuda.synchronize(self.device)


class SkipItem(Exception):
    """Raised by an item that cannot run here (the message says why).

    Arguments
    ---------
    reason : str
        One line.

    Example
    -------
    >>> str(SkipItem("no fixture"))
    'no fixture'
    """


def _skip_exceptions():
    """pytest's skip exception (the official-code helper raises it)."""
    try:
        import pytest

        return (SkipItem, pytest.skip.Exception)
    except ImportError:  # pragma: no cover - pytest is a test dependency
        return (SkipItem,)


class Report:
    """Checks, figures and notes of one item, printed as they come.

    Arguments
    ---------
    item : str
        Item name, e.g. ``"parity"``.
    path : str or pathlib.Path or None
        If given, the result (:meth:`to_dict`) is rewritten there after
        every change, so that an item killed at its time limit still
        leaves what it had checked.

    Example
    -------
    >>> rep = Report("demo")
    >>> rep.check("two", 1 + 1 == 2, "arithmetic")
      [ok]   two: arithmetic
    True
    >>> with rep.guard("broken"):
    ...     raise RuntimeError("boom")  # the traceback goes to stderr
      [FAIL] broken: RuntimeError: boom
    >>> rep.to_dict()["status"]
    'fail'
    """

    def __init__(self, item, path=None):
        self.item = item
        self.path = None if path is None else pathlib.Path(path)
        self.checks = []
        self.figures = {}
        self.notes = []
        self.skipped = None
        self.began = time.monotonic()

    def save(self):
        """Writes the result to ``path`` (atomically), if one was given."""
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, self.path)

    def check(self, name, ok, detail=""):
        """Records (and prints) a check.

        Arguments
        ---------
        name : str
            What is checked.
        ok : bool
            Whether it passed.
        detail : str
            The figures behind it.

        Returns
        -------
        bool
            ``ok``.
        """
        ok = bool(ok)
        self.checks.append({"name": name, "ok": ok, "detail": detail})
        mark = "[ok]  " if ok else "[FAIL]"
        print(f"  {mark} {name}: {detail}", flush=True)
        self.save()
        return ok

    def figure(self, key, value):
        """Records a figure (a number, a string or None).

        Arguments
        ---------
        key : str
            Name in the JSON.
        value : object
            JSON-serialisable value.

        Returns
        -------
        object
            ``value``.
        """
        if isinstance(value, float):
            value = float(f"{value:.6g}")
        self.figures[key] = value
        self.save()
        return value

    def note(self, text):
        """Records (and prints) a note.

        Arguments
        ---------
        text : str
            One line.
        """
        self.notes.append(text)
        print(f"  note: {text}", flush=True)
        self.save()

    @contextlib.contextmanager
    def guard(self, name):
        """Runs a block; an exception becomes a failed check ``name``.

        A skip (:class:`SkipItem`, pytest's skip) becomes a note.

        Arguments
        ---------
        name : str
            What the block checks.

        Yields
        ------
        None
        """
        try:
            yield
        except _skip_exceptions() as err:
            self.note(f"{name} skipped: {err}")
        except Exception as err:  # noqa: BLE001 - reported, the item goes on
            self.check(name, False, f"{type(err).__name__}: {err}")
            traceback.print_exc()
            sys.stdout.flush()

    def skip(self, reason):
        """Marks the whole item as skipped.

        Arguments
        ---------
        reason : str
            One line saying why.
        """
        self.skipped = reason
        print(f"  SKIPPED: {reason}", flush=True)
        self.save()

    def to_dict(self):
        """The item's result.

        Returns
        -------
        dict
            ``status`` ("pass", "fail" or "skip"), checks, figures, notes,
            seconds.
        """
        if any(not c["ok"] for c in self.checks):
            status = "fail"
        elif self.checks:
            status = "pass"
        else:
            status = "skip"
        result = {
            "item": self.item,
            "status": status,
            "checks": self.checks,
            "figures": self.figures,
            "notes": self.notes,
            "seconds": round(time.monotonic() - self.began, 1),
        }
        if self.skipped:
            result["skipped"] = self.skipped
        elif status == "skip":
            result["skipped"] = "nothing was checked"
        return result


def cosine(a, b):
    """Cosine similarity of two vectors, in float64.

    Arguments
    ---------
    a : torch.Tensor or numpy.ndarray
        A vector.
    b : torch.Tensor or numpy.ndarray
        A vector of the same size.

    Returns
    -------
    float
        The cosine.

    Example
    -------
    >>> round(cosine(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])), 4)
    0.7071
    """
    a = torch.as_tensor(a).detach().double().cpu().reshape(-1)
    b = torch.as_tensor(b).detach().double().cpu().reshape(-1)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def peak_memory_gib(device):
    """Peak allocated memory since the last reset, in GiB (CUDA only).

    Arguments
    ---------
    device : str
        The device.

    Returns
    -------
    float or None
        GiB, or None on the CPU.

    Example
    -------
    >>> peak_memory_gib("cpu") is None
    True
    """
    if not str(device).startswith("cuda"):
        return None
    return torch.cuda.max_memory_allocated(device) / 2**30


def reset_memory(device):
    """Frees cached blocks and resets the peak counter (CUDA only).

    Arguments
    ---------
    device : str
        The device.

    Example
    -------
    >>> reset_memory("cpu")
    """
    import gc

    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def tagged_pids(tag):
    """Process ids whose environment holds ``GPU_CHECK_TAG=tag`` (Linux).

    Arguments
    ---------
    tag : str
        The run's tag.

    Returns
    -------
    list of int
        Matching processes other than this one.

    Example
    -------
    >>> tagged_pids("no-such-tag")
    []
    """
    needle = f"{TAG_ENV}={tag}".encode()
    pids = []
    if not os.path.isdir("/proc"):
        return pids
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry))
        except OSError:  # gone, or not ours
            continue
    return pids


def kill_tagged(tag):
    """SIGKILLs every process of this run left over (see :func:`tagged_pids`).

    Arguments
    ---------
    tag : str
        The run's tag.

    Returns
    -------
    int
        How many processes were signalled.

    Example
    -------
    >>> kill_tagged("no-such-tag")
    0
    """
    count = 0
    for pid in tagged_pids(tag):
        try:
            os.kill(pid, signal.SIGKILL)
            count += 1
        except ProcessLookupError:
            pass
    return count
