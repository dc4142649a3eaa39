"""Multi-label classification on BigEarthNet v2 (reBEN) from a rico database: a script to copy.

What it does, as the reBEN paper's baselines:

- 10 m and 20 m Sentinel-2 bands (B02 B03 B04 B08 B05 B06 B07 B11 B12 B8A), the 20 m ones
  upsampled to 120 x 120 with nearest; normalised with the published train-split statistics
  (``normalize="bigearthnet-v2"``); the split rules of ``rico.BigEarthNet`` (snow and
  cloud/shadow patches left out);
- a torchvision ResNet-50 (or ``--arch resnet18`` / ``small``) whose first layer takes the
  bands asked, 19 outputs, ``BCEWithLogitsLoss``, AdamW with linear warm-up and cosine decay;
- validation with macro and micro average precision (torchmetrics), on every rank's part;
- checkpoints with the model, the optimiser, the schedule and the loader's position: a job
  restarted with ``--resume`` goes on with exactly the batches it had not seen, mid-epoch.

One process on CPU (a smoke test; the database from ``make demo`` or ``rico bigearthnet``)::

    python examples/train_bigearthnet.py --db BigEarthNet.lmdb --metadata metadata.parquet \\
        --device cpu --arch small --batch-size 8 --max-steps 20

Several processes: ``torchrun`` starts them; each takes its part of every epoch (rico cuts the
shuffled rows into equal parts, so every rank runs the same number of steps), the gradients
are averaged by ``DistributedDataParallel`` (gloo on CPU, NCCL on GPU)::

    torchrun --standalone --nproc_per_node 2 examples/train_bigearthnet.py --db BigEarthNet.lmdb \\
        --device cpu --arch small --max-steps 20

What a GPU run needs: a CUDA build of torch with torchvision and torchmetrics, ``rico-eo`` with
the ``bigearthnet`` extra, the database on a local disk (``rico bench DB`` says what it
delivers), and ``--device cuda`` (the default when torch sees a GPU). Batches are then pinned
in a background thread and copied without blocking, the forward pass runs under autocast
(bfloat16 where the GPU has it, else float16 with a gradient scaler) in channels-last memory.
On N GPUs of one machine: ``torchrun --standalone --nproc_per_node N ...``; each process takes
``--batch-size`` samples per step and, by default, ``cores / N`` threads for its batches. At
batch 256-512 per GPU a ResNet-50 step takes longer than rico takes to assemble the next batch
on a few cores; the log's ``wait`` column (time spent waiting for a batch) says when the loader
is the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import rico
import rico.torch
import torch
import torch.distributed as dist
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchmetrics.classification import MultilabelAveragePrecision

NUM_CLASSES = 19


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", required=True, help="the database (rico bigearthnet ...)")
    p.add_argument(
        "--metadata",
        default="metadata.parquet",
        help="BigEarthNet v2's metadata.parquet (a relative name is also looked up beside --db)",
    )
    p.add_argument("--max-steps", type=int, default=1000, help="optimiser steps in all")
    p.add_argument("--batch-size", type=int, default=32, help="samples per step and process")
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cuda" if torch.cuda.is_available() else "cpu",
    )
    p.add_argument(
        "--bands",
        default="10",
        help="a rico.BigEarthNet band preset (10: the 10 m and 20 m bands; ALL, S2, RGB, ...) "
        "or band names separated by commas",
    )
    p.add_argument("--size", type=int, default=120, help="every band is resampled to this size")
    p.add_argument("--resample", choices=["nearest", "bilinear"], default="nearest")
    p.add_argument("--arch", choices=["resnet50", "resnet18", "small"], default="resnet50")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, default=None, help="default: max-steps / 20")
    p.add_argument("--seed", type=int, default=42, help="model initialisation and shuffle")
    p.add_argument("--threads", type=int, default=None, help="rico threads per process")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no autocast on GPU")
    p.add_argument("--val-every", type=int, default=0, help="validate every N steps (0: at end)")
    p.add_argument("--val-batches", type=int, default=None, help="at most N validation batches")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument(
        "--checkpoint",
        default=None,
        help="where to save checkpoints; {step} in the name keeps each (ckpt-{step}.pt)",
    )
    p.add_argument("--save-every", type=int, default=0, help="save every N steps (and at end)")
    p.add_argument("--resume", type=Path, default=None, help="a checkpoint to go on from")
    p.add_argument("--summary", type=Path, default=None, help="write a JSON summary here")
    return p.parse_args(argv)


def band_arg(text: str) -> str | int | list[str]:
    if "," in text:
        return [b.strip() for b in text.split(",") if b.strip()]
    return int(text) if text.isdigit() else text


def make_model(arch: str, channels: int) -> nn.Module:
    """A torchvision ResNet with 19 outputs whose first layer takes ``channels`` bands."""
    if arch == "small":
        return small_resnet(channels)
    model = getattr(torchvision.models, arch)(weights=None, num_classes=NUM_CLASSES)
    model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def small_resnet(channels: int, widths: tuple[int, ...] = (16, 32, 64, 128)) -> nn.Module:
    """A narrow ResNet (torchvision's basic blocks, one per stage, 0.7 M parameters): the
    smoke tests' model on CPU."""
    block = torchvision.models.resnet.BasicBlock
    layers: list[nn.Module] = [
        nn.Conv2d(channels, widths[0], kernel_size=3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(widths[0]),
        nn.ReLU(inplace=True),
    ]
    width = widths[0]
    for i, out in enumerate(widths):
        stride = 1 if i == 0 else 2
        down = None
        if stride != 1 or width != out:
            down = nn.Sequential(nn.Conv2d(width, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        layers.append(block(width, out, stride, down))
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, NUM_CLASSES)]
    return nn.Sequential(*layers)


def warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def setup_distributed(device: str) -> tuple[int, int, int]:
    """(rank, world size, local rank): from torchrun's environment, or one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def validate(model, loader, device, autocast, max_batches) -> dict[str, float]:
    """Macro and micro average precision and the mean loss over every rank's part."""
    if len(loader) == 0:
        return {}  # fewer validation rows than ranks
    macro = MultilabelAveragePrecision(num_labels=NUM_CLASSES, average="macro").to(device)
    micro = MultilabelAveragePrecision(num_labels=NUM_CLASSES, average="micro").to(device)
    loss_sum = torch.zeros(2, device=device, dtype=torch.float64)  # (sum, count)
    criterion = nn.BCEWithLogitsLoss(reduction="sum")
    model.eval()
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            x, y = batch["image"], batch["label"]
            with autocast:
                logits = model(x).float()
            loss_sum += torch.stack(
                [criterion(logits, y).double(), y.new_tensor(y.numel()).double()]
            )
            probs, targets = torch.sigmoid(logits), y.int()
            macro.update(probs, targets)
            micro.update(probs, targets)
    model.train()
    if dist.is_initialized():
        dist.all_reduce(loss_sum)
    return {
        "ap_macro": float(macro.compute()),  # torchmetrics gathers every rank's part
        "ap_micro": float(micro.compute()),
        "loss": float(loss_sum[0] / loss_sum[1].clamp(min=1)),
    }


def save(path: Path, **state) -> None:
    """Written beside, then renamed: a job killed while saving keeps the last checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    rank, world, local_rank = setup_distributed(args.device)
    cuda = args.device == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = args.threads or max(1, (os.cpu_count() or 1) // local_world)

    def log(*parts) -> None:
        if rank == 0:
            print(*parts, flush=True)

    # Data: the train and validation splits; each rank takes its part of each (rank and world
    # size from the process group), batches assembled by Rust threads in this process.
    data = dict(
        metadata=args.metadata, bands=band_arg(args.bands), size=args.size,
        resample=args.resample, normalize="bigearthnet-v2", masks=False, threads=threads,
    )  # fmt: skip
    train = rico.BigEarthNet(args.db, split="train", **data)
    val = rico.BigEarthNet(args.db, split="validation", **data)
    to_device = dict(pin_memory=cuda, device=device)
    loader = rico.torch.BigEarthNetLoader(
        train, batch_size=args.batch_size, shuffle=True, seed=args.seed, drop_last=True,
        **to_device,
    )  # fmt: skip
    val_loader = rico.torch.BigEarthNetLoader(
        val, batch_size=args.batch_size, shuffle=False, **to_device
    )
    if len(loader) == 0:
        raise SystemExit(
            f"the train split has {len(train)} rows: too few for {world} x {args.batch_size}"
        )
    log(
        f"train {len(train)} rows, validation {len(val)}, bands {train.bands}, "
        f"{world} process(es), {len(loader)} steps per epoch"
    )

    torch.manual_seed(args.seed)
    model = make_model(args.arch, len(train.bands)).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    net = (
        DistributedDataParallel(model, device_ids=[local_rank] if cuda else None)
        if world > 1
        else model
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.max_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, args.max_steps))
    amp = cuda and args.amp
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    autocast = torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and amp_dtype == torch.float16)
    criterion = nn.BCEWithLogitsLoss()

    step = 0
    if args.resume is not None:
        ckpt = torch.load(args.resume, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        # The loader's position is the same on every rank (it counts every rank's samples),
        # so rank 0's checkpoint resumes them all.
        loader.load_state_dict(ckpt["loader"])
        step = ckpt["step"]
        log(f"resumed at step {step}: epoch {loader.epoch}, loader {ckpt['loader']}")

    def checkpoint() -> None:
        if args.checkpoint is not None and rank == 0:
            save(
                Path(args.checkpoint.format(step=step)),
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                schedule=schedule.state_dict(),
                scaler=scaler.state_dict(),
                step=step,
                loader=loader.state_dict(),  # the same on every rank
                args=vars(args),
            )
        if world > 1:
            dist.barrier()

    losses: list[tuple[int, float]] = []
    pending: list[tuple[int, torch.Tensor]] = []  # read at log steps: no GPU sync every step
    val_metrics: dict[str, float] = {}
    samples_per_step = args.batch_size * world
    timed_steps, timed_s, wait_s, logged = 0, 0.0, 0.0, step
    window = time.perf_counter()
    net.train()
    while step < args.max_steps:
        batches = iter(loader)  # the next epoch, or the rest of a resumed one
        while step < args.max_steps:
            t0 = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break  # end of the epoch
            wait_s += time.perf_counter() - t0
            x, y = batch["image"], batch["label"]
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                logits = net(x)
            loss = criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            step += 1
            pending.append((step, loss.detach()))
            if step % args.log_every == 0 or step == args.max_steps:
                losses += [(s, float(v)) for s, v in pending]  # waits for the GPU
                pending.clear()
                now = time.perf_counter()
                n, elapsed, logged = step - logged, now - window, step
                timed_steps, timed_s = timed_steps + n, timed_s + elapsed
                log(
                    f"step {step}/{args.max_steps} epoch {loader.epoch} loss {losses[-1][1]:.4f} "
                    f"lr {schedule.get_last_lr()[0]:.2e} {n * samples_per_step / elapsed:.1f} samples/s "
                    f"{1000 * elapsed / n:.1f} ms/step wait {1000 * wait_s / n:.1f} ms/step"
                )
                window, wait_s = now, 0.0
            if args.save_every and step % args.save_every == 0:
                checkpoint()
            if args.val_every and step % args.val_every == 0:
                val_metrics = validate(net, val_loader, device, autocast, args.val_batches)
                log(f"step {step} validation {val_metrics}")
                window = time.perf_counter()
    if not args.val_every or step % args.val_every:
        val_metrics = validate(net, val_loader, device, autocast, args.val_batches)
        log(f"step {step} validation {val_metrics}")
    checkpoint()
    summary = {
        "steps": step,
        "world_size": world,
        "device": str(device),
        "losses": losses,
        "validation": val_metrics,
        "samples_per_s": timed_steps * samples_per_step / timed_s if timed_s else None,
        "ms_per_step": 1000 * timed_s / timed_steps if timed_steps else None,
        "loader": loader.state_dict(),
    }
    if args.summary is not None and rank == 0:
        args.summary.write_text(json.dumps(summary, indent=1))
    if world > 1:
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    main()
