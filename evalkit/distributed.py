"""Data parallel runs under `torchrun` / `accelerate launch`: one model replica per process.

Every rank builds the same requests and plans the same length-sorted batches a single process
would (batching.py); rank r runs the batches dealt to it (round robin over the sorted batches, so
each rank gets a length-balanced share), and after each round every rank receives all outputs
(torch.distributed over gloo, on CPU and GPU alike: only small Python objects travel). Because each
batch is exactly a batch of the single-process run, the numbers are identical to the last bit, not
merely close. Rank 0 writes the response cache, scores and writes the results; the other ranks
only compute.

A rank that dies stops the run with one line on the surviving ranks; every round already gathered
is in the response cache, so running the same command again resumes.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, TypeVar

from .errors import EvalkitError

T = TypeVar("T")
R = TypeVar("R")

_TIMEOUT = timedelta(minutes=int(os.environ.get("EVALKIT_DIST_TIMEOUT_MIN", "30")))
_RESUME = "the responses gathered so far are in the response cache: run the same command again to resume"


@dataclass
class Ranks:
    rank: int
    world: int
    local_rank: int
    rows: list[int] = field(default_factory=list)  # model-input rows each rank computed (for results.json)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world, "rows_per_rank": list(self.rows), "launcher": _launcher()}

    def all_gather(self, obj: Any) -> list[Any]:
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        try:
            dist.all_gather_object(out, obj)
        except Exception as err:  # noqa: BLE001 - gloo raises RuntimeError/DistBackendError when a peer is gone
            raise _failed(f"rank {self.rank} of {self.world}: another rank stopped or timed out "
                          f"({_short(err)}); {_RESUME}") from None
        return out

    def broadcast(self, obj: Any) -> Any:
        """rank 0's `obj` on every rank."""
        return self.all_gather(obj if self.is_main else None)[0]


_current: Ranks | None = None


def current() -> Ranks | None:
    """The ranks of this run, or None outside a multi-process launch (or before `init_from_env`)."""
    return _current


def is_main() -> bool:
    return _current is None or _current.is_main


def init_from_env() -> Ranks | None:
    """Join the process group that torchrun / accelerate launch describe in the environment (WORLD_SIZE > 1)."""
    global _current
    if _current is not None:
        return _current
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        try:
            dist.init_process_group("gloo", timeout=_TIMEOUT)
        except Exception as err:  # noqa: BLE001
            raise EvalkitError(f"rank {rank} of {world} could not join the process group ({_first_line(err)}); "
                               "launch with torchrun or accelerate launch, which set MASTER_ADDR and MASTER_PORT") from None
    _current = Ranks(rank, world, local_rank, [0] * world)
    _stop_quietly_when_launcher_ends_us(_current)
    return _current


def check_adapter(cls: type) -> None:
    """Only adapters whose batches go through batching.run_batches can share work between ranks."""
    if _current is not None and not getattr(cls, "data_parallel", False):
        raise EvalkitError(f"adapter '{getattr(cls, 'name', cls.__name__)}' cannot run under torchrun / accelerate launch "
                           "(it has no data-parallel support); launch it as one process"
                           + (" and use --model-arg data_parallel_size=N" if getattr(cls, "name", "") == "vllm" else ""))


def agree_on_hits(hits: list[bool]) -> list[bool]:
    """Rank 0's view of which requests the response cache answers, so every rank plans the same batches."""
    return hits if _current is None else _current.broadcast(hits)


def device_for(device: str | None) -> str | None:
    """Under a launch with GPUs, `auto` / `cuda` mean this rank's GPU (LOCAL_RANK); otherwise unchanged."""
    if _current is None or device not in (None, "", "auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        index = _current.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return f"cuda:{index}"
    return device


def deal(n_batches: int, world: int) -> list[list[int]]:
    """Rounds of batch indices, one batch per rank per round, in the single-process order.

    The batches come sorted longest first, so neighbours cost about the same: dealing them round
    robin gives each rank a length-balanced share, and every round ends at about the same time.
    """
    return [list(range(start, min(start + world, n_batches))) for start in range(0, n_batches, world)]


def run_dealt(batches: list[list[T]], ranks: Ranks, fn: Callable[[list[T]], list[R]],
              on_done: Callable[[list[T], list[R]], None] | None = None) -> list[list[R]]:
    """Each rank runs its batches of each round; everyone gets every batch's outputs, in order."""
    outputs: list[list[R]] = []
    for round_ in deal(len(batches), ranks.world):
        mine = round_[ranks.rank] if ranks.rank < len(round_) else None
        try:
            result = ("ok", fn(batches[mine])) if mine is not None else ("ok", None)
        except EvalkitError as err:
            result = ("error", str(err))
        except Exception as err:  # noqa: BLE001 - tell the other ranks, then fail the same way everywhere
            result = ("error", f"{type(err).__name__}: {_first_line(err)}")
        gathered = ranks.all_gather(result)
        for r, (status, value) in enumerate(gathered):
            if status == "error":
                raise _failed(f"rank {r} of {ranks.world} failed: {value}; {_RESUME}")
        for r, (index, (_, out)) in enumerate(zip(round_, gathered)):
            ranks.rows[r] += len(out)
            outputs.append(out)
            if on_done:
                on_done(batches[index], out)
    return outputs


def _launcher() -> str:
    if "ACCELERATE_MIXED_PRECISION" in os.environ or any(k.startswith("ACCELERATE_") for k in os.environ):
        return "accelerate"
    return "torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else "env"


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def _short(err: BaseException) -> str:
    """gloo's messages start with a long source path: keep the words after it."""
    text = _first_line(err)
    return text.rsplit("] ", 1)[-1] if text.startswith("[") else text


_reported = False


def _failed(message: str) -> EvalkitError:
    """The run is over: say so now, in one line, before the launcher's SIGTERM can cut us short."""
    global _reported
    print(f"evalkit: error: {message}", file=sys.stderr, flush=True)
    _reported = True
    err = EvalkitError(message)
    err.reported = True  # type: ignore[attr-defined]  # the CLI does not print it again
    return err


def _stop_quietly_when_launcher_ends_us(ranks: Ranks) -> None:
    """torchrun sends SIGTERM to the surviving ranks when one fails: say so in one line (once), no traceback."""
    def handler(signum, frame):  # noqa: ARG001
        if not _reported:
            print(f"evalkit: error: rank {ranks.rank} of {ranks.world} stopped by the launcher (another rank failed); {_RESUME}",
                  file=sys.stderr, flush=True)
        os._exit(1)

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        pass
