"""torch.distributed for a training run (pre-training or a style) under torchrun: the device, set-up
and teardown, rank, each process's rows of a batch, the sums they share."""
from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


class DistributedError(RuntimeError):
    """The device or the process group cannot be had as asked; `str()` is one line."""


def check_device(device: str, local_rank: int = 0) -> torch.device:
    """The torch device for `device` ("cpu", "cuda" or "cuda:N"; under torchrun "cuda" is this
    process's GPU); DistributedError for anything else or for CUDA without a GPU."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise DistributedError(f"unknown device {device!r} (cpu or cuda)")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DistributedError(f"device {device!r} asked but CUDA is not available here (torch {torch.__version__}, "
                               f"{'a CPU-only build' if torch.version.cuda is None else 'no GPU found'})")
    chosen = torch.device("cuda", int(index) if index else local_rank)
    if chosen.index >= torch.cuda.device_count():
        raise DistributedError(f"device {chosen} asked but this machine has {torch.cuda.device_count()} GPU(s)")
    return chosen


class ProcessGroup:
    """This process's place in a torchrun group (or alone): rank, world size, and the few
    collectives the run needs. Only rank 0 writes files and prints."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.local_rank, self.owned = 0, int(os.environ.get("LOCAL_RANK", "0")), False
        self.device = torch.device("cpu")

    def start(self, device: str) -> torch.device:
        if self.world > 1:
            if not dist.is_available():
                raise DistributedError(f"WORLD_SIZE is {self.world} but this torch has no torch.distributed")
            self.device = check_device(device, self.local_rank)
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
                self.owned = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            log.info("process %d of %d on %s", self.rank, self.world, self.device)
        else:
            self.device = check_device(device)
        return self.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's rows of an array every process holds whole: every world-th, from its rank."""
        return rows[self.rank::self.world]

    def all_reduce_grads(self, model) -> None:
        """Sum every parameter's gradient over the processes (each process's loss already
        carries its share of the whole batch's tokens)."""
        if self.world == 1:
            return
        for p in model.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)

    def sum(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag))[0] > 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owned:
            dist.destroy_process_group()
            self.owned = False
