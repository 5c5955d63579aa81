"""The training loop of every recipe (PAPER.md section 4): one domain per batch on a seeded
schedule, best checkpoint chosen on validation, crash-safe checkpoints and exact resume.

Model selection: when shared weights train (``pretrain``, ``joint``) the whole model is kept at
its best mean validation accuracy; when only per-domain weights train (``adapt``) each domain
keeps its own best epoch, since domains cannot affect each other.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from multidomain.data.benchmark import load_benchmark
from multidomain.engine import builders, data_setup
from multidomain.engine.batches import DomainBatches, Plan, epoch_plan, eval_plan, seed_for
from multidomain.engine.bn_guard import is_collapsed, reestimate_bn
from multidomain.engine.checkpoint import (
    BestUpdate,
    latest_checkpoint,
    load_optimizer_state,
    save_checkpoint,
)
from multidomain.engine.compiled import compile_model
from multidomain.engine.config import TrainConfig
from multidomain.engine.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    end_distributed,
    env_info,
    init_distributed,
    is_lost_rank,
    lost_rank_error,
    resolve_device,
    unwrap,
    wrap,
)
from multidomain.engine.evaluate import autocast, evaluate
from multidomain.engine.logs import MetricsLog
from multidomain.engine.run_dir import (
    check_data,
    claim_run_dir,
    data_fingerprint,
    publish_model,
    record_data,
    resolve_run_config,
    write_config,
)
from multidomain.errors import Interrupted, TrainingDiverged
from multidomain.io import read_json, write_json
from multidomain.models.packs import load_model

logger = logging.getLogger(__name__)


__all__ = ["RunState", "Trainer", "TrainingDiverged", "run_training"]


@dataclass
class RunState:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed within the current epoch
    global_step: int = 0
    best: dict[str, float] = field(default_factory=dict)  # "mean" or domain -> val accuracy
    best_epoch: dict[str, int] = field(default_factory=dict)
    train_accuracy: dict[str, float] = field(default_factory=dict)  # of the last epoch
    # domain -> [correct, count] so far in this epoch, so a resumed epoch keeps counting
    epoch_counts: dict[str, list[int]] = field(default_factory=dict)
    # torch's intra-op threads: results (and exact resume) hold at an equal count
    threads: int = 0
    # domain -> undecodable images skipped (data.skip_bad), distinct files
    skipped_images: dict[str, int] = field(default_factory=dict)


class Trainer:
    """Holds what one run needs; :meth:`fit` trains it to the end (or to ``run.max_steps``)."""

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.config, self.run_dir = config, run_dir
        self.info = init_distributed(config.run.dist_timeout)
        self.device = resolve_device(config.run.device, self.info)
        if config.run.threads is not None:
            torch.set_num_threads(config.run.threads)  # results hold at an equal thread count
        if self.device.type == "cpu":
            # denormal floats appear as weights decay and slow CPU kernels down by up to 1.5x
            torch.set_flush_denormal(True)
        self.root = data_setup.resolve_root(config.data)
        self.benchmark = load_benchmark(self.root)
        data_setup.check_domains(self.benchmark, config.data.domains)
        self.checkpoint = latest_checkpoint(run_dir)
        if self.checkpoint is not None:
            self.model = load_model(self.checkpoint / "model")
        else:
            # the initial weights (and new heads) come from run.seed, not from what ran before
            torch.manual_seed(config.run.seed)
            self.model = builders.build_model(config, self.benchmark)
        self.model.to(self.device)
        builders.trainable_parameters(self.model, config)
        self.per_domain_best = not builders.trains_shared(self.model)
        self.optimizer = builders.build_optimizer(self.model, config)
        self.lr_at = builders.build_scheduler(config)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.run.precision == "fp16")
        self.train_samples, self.val_samples = data_setup.build_samples(
            self.root, config.data, self.benchmark, config.run.seed
        )
        self.model.cards.update(data_setup.domain_cards(self.benchmark, self.train_samples))
        workers, pin = data_setup.workers(config.data, self.device), self.device.type == "cuda"
        samples = [s for s in (self.train_samples, self.val_samples) if s is not None]
        self.caches_images = data_setup.cache_images(config.data, workers, samples)
        if self.caches_images:
            data_setup.enable_cache(samples)
        self.train_batches = DomainBatches(self.train_samples, workers, pin)
        if self.val_samples is not None:
            self.val_batches = DomainBatches(self.val_samples, workers, pin)
        self.net = wrap(self.model, self.info, self.device)
        if config.run.compile:
            self.net = compile_model(self.net, len(self.model.domains))
        self.log = MetricsLog(run_dir, self.info.is_main, config.run.tensorboard)
        self.state = RunState(threads=torch.get_num_threads())
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.previous = self.checkpoint  # the checkpoint the next save supersedes

    # -- checkpoints -----------------------------------------------------------------------
    def _restore(self, folder: Path) -> None:
        saved = load_optimizer_state(folder)
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        saved = RunState(**read_json(folder / "state.json", "checkpoint state"))
        if saved.threads and saved.threads != self.state.threads:
            logger.warning(
                "this run was trained with %d threads and resumes with %d: the result will "
                "differ slightly from an uninterrupted run (set run.threads=%d for an exact "
                "resume)",
                saved.threads,
                self.state.threads,
                saved.threads,
            )
        self.state = replace(saved, threads=self.state.threads)
        logger.info(
            "resuming from %s (epoch %d, step %d)",
            folder.name,
            self.state.epoch + 1,
            self.state.step,
        )

    def save(self, best: BestUpdate | None = None) -> None:
        """Checkpoint (main rank); ``best`` names the parts that are newly best."""
        if self.info.is_main:
            optimizer_state = {
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
            }
            self.previous = save_checkpoint(
                self.run_dir,
                unwrap(self.net),
                optimizer_state,
                asdict(self.state),
                best or BestUpdate(),
                previous=self.previous,
            )
        barrier(self.info)

    # -- training --------------------------------------------------------------------------
    def fit(self) -> bool:
        """Train until the last epoch; returns False when stopped early by ``run.max_steps``.

        Raises:
            Interrupted: on Ctrl-C, naming the step the run will resume from.
        """
        try:
            return self._fit()
        except KeyboardInterrupt:
            saved = read_json(self.previous / "state.json") if self.previous else None
            where = f"step {saved['global_step']}" if saved else "the start (no checkpoint yet)"
            raise Interrupted(
                f"interrupted at step {self.state.global_step}; the last checkpoint is at "
                f"{where}: resume with `multidomain train --out {self.run_dir} --resume`"
            ) from None
        finally:
            self.log.close()

    def _fit(self) -> bool:
        epochs = self.config.optim.epochs
        while self.state.epoch < epochs:
            epoch = self.state.epoch
            if not self.train_one_epoch(epoch, self.epoch_plan(epoch), self.train_batches):
                return False
            self.end_of_epoch(self.state.epoch)
        if self.info.is_main:
            final = self.previous or latest_checkpoint(self.run_dir)
            publish_model(
                final / ("best" if self.val_samples is not None else "model"), self.run_dir
            )
            write_json(self.run_dir / "summary.json", asdict(self.state))
        barrier(self.info)  # the model is published when any rank returns
        return True

    def epoch_plan(self, epoch: int) -> Plan:
        """This rank's steps of ``epoch``: (domain, sample indices) per step."""
        cfg = self.config
        return epoch_plan(
            self.train_samples,
            cfg.data.batch_size,
            cfg.run.seed,
            epoch,
            cfg.run.schedule,
            self.info.rank,
            self.info.world,
        )

    def train_one_epoch(self, epoch: int, plan: Plan, batches: DomainBatches) -> bool:
        """Train the steps of ``plan`` from ``state.step`` on, loading them with ``batches``;
        returns False when ``run.max_steps`` stops the run first."""
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(epoch)
        self.net.train()
        self._freeze_untrained_norms()
        if self.state.step == 0:
            self.state.epoch_counts = {}
        meters = self.state.epoch_counts
        bar = tqdm(
            total=len(plan),
            initial=self.state.step,
            unit="batch",
            leave=False,
            desc=f"epoch {epoch + 1}/{cfg.optim.epochs}",
            # None: tqdm shows the bar on a terminal only
            disable=None if cfg.run.progress and self.info.is_main else True,
        )
        # rate stays 0 when resuming an epoch whose steps were all done before its validation
        tick, images_done, rate = time.perf_counter(), 0, 0.0
        steps = batches.iterate(plan, epoch, start=self.state.step)
        for step, (domain, images, labels) in enumerate(steps, start=self.state.step):
            loss, correct, count = self.train_step(images, labels, domain, epoch, step)
            meter = meters.setdefault(domain, [0, 0])
            meter[0] += correct
            meter[1] += count
            images_done += count
            self.state.step, self.state.global_step = step + 1, self.state.global_step + 1
            rate = images_done / max(time.perf_counter() - tick, 1e-9)
            bar.set_postfix(loss=f"{loss:.3f}", img_s=f"{rate:.0f}", refresh=False)
            bar.update(1)
            if self.state.global_step % cfg.run.log_every == 0:
                self.log.write(
                    "train",
                    self.state.global_step,
                    epoch=epoch,
                    domain=domain,
                    loss=loss,
                    lr=self.lr_at(epoch),
                    images_per_s=rate,
                )
            saved = self.state.global_step % cfg.run.checkpoint_every == 0
            if saved:
                self.save()
            if cfg.run.max_steps and self.state.global_step >= cfg.run.max_steps:
                bar.close()
                if not saved:
                    self.save()
                return False
        bar.close()
        self.state.train_accuracy = {d: 100.0 * c / max(n, 1) for d, (c, n) in meters.items()}
        self.log.write(
            "epoch",
            self.state.global_step,
            epoch=epoch,
            images_per_s=rate,
            train_accuracy=self.state.train_accuracy,
        )
        return True

    def train_step(
        self, images, labels, domain: str, epoch: int, step: int
    ) -> tuple[float, int, int]:
        """One optimizer step on one domain's batch.

        Returns:
            The loss (mean over ranks), the correct predictions and the images (sums over
            ranks): every rank takes the same decisions from them.
        """
        torch.manual_seed(seed_for(self.config.run.seed, epoch, step, 7))  # dropout masks
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        with autocast(self.device, self.config.run.precision):
            logits = self.net(images, domain)
            loss = F.cross_entropy(logits.float(), labels)
        correct = (logits.detach().argmax(1) == labels).sum()
        loss_value, correct, count = self._over_ranks(loss, correct, labels.shape[0])
        if not math.isfinite(loss_value):  # on every rank when on one: all stop together
            raise self._diverged(f"loss is {loss_value}", epoch, step, domain)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        # A huge but finite loss can overflow in backward: stepping would save NaN weights.
        # (fp16's GradScaler skips such steps itself.)
        if not self.scaler.is_enabled() and not _finite_gradients(self.model):
            raise self._diverged(
                f"gradients are not finite (loss {loss.item():.3g})", epoch, step, domain
            )
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_value, correct, count

    def _over_ranks(
        self, loss: torch.Tensor, correct: torch.Tensor, count: int
    ) -> tuple[float, int, int]:
        """(mean loss, summed correct, summed count) over the ranks: one small all-reduce."""
        if self.info.world == 1:
            return loss.item(), int(correct), count
        totals = torch.stack([loss.detach().double(), correct.double()])
        totals = torch.cat([totals, totals.new_tensor([count])])
        loss_sum, correct_sum, count_sum = all_reduce_sum(totals, self.info).tolist()
        return loss_sum / self.info.world, int(correct_sum), int(count_sum)

    def _diverged(self, what: str, epoch: int, step: int, domain: str) -> TrainingDiverged:
        return TrainingDiverged(
            f"{what} at epoch {epoch + 1}, step {step + 1} (domain {domain!r}); "
            f"nothing was saved after it: the last good checkpoint in {self.run_dir} is "
            "intact. Resuming would repeat the same steps: check the data, or start a new run "
            "(another --out) with a lower optim.lr"
        )

    def _freeze_untrained_norms(self) -> None:
        """BN layers with frozen parameters keep their running statistics too."""
        for module in self.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not any(
                p.requires_grad for p in module.parameters()
            ):
                module.eval()

    # -- validation and model selection ---------------------------------------------------
    def end_of_epoch(self, epoch: int) -> None:
        self.state.epoch, self.state.step = epoch + 1, 0
        self._count_skipped()
        if self.val_samples is None:  # trainval protocol: nothing to select on, keep the last
            self.save(BestUpdate(frozenset(self.model.domains), shared=True))
            return
        accuracies = self.validate(epoch)
        self.log.write(
            "val",
            self.state.global_step,
            epoch=epoch,
            accuracy=accuracies,
            mean_accuracy=sum(accuracies.values()) / len(accuracies),
        )
        self.save(self._best_update(accuracies, epoch))

    def _count_skipped(self) -> None:
        """Report the images ``data.skip_bad`` skipped (this process's loaders; a resumed run
        keeps the larger count of the two processes)."""
        seen = data_setup.skipped_images(self.train_samples, self.val_samples)
        if self.info.world > 1:  # each rank decodes its own shard: the job's count is the sum
            names = sorted(seen)
            summed = all_reduce_sum(torch.tensor([seen[d] for d in names]), self.info)
            seen = dict(zip(names, summed.tolist(), strict=True))
        counts = self.state.skipped_images
        for domain, n in seen.items():
            if n > counts.get(domain, 0):
                counts[domain] = n
        if any(counts.values()):
            listed = ", ".join(f"{d}: {n}" for d, n in sorted(counts.items()) if n)
            logger.warning(
                "skipped %d undecodable images so far (%s)", sum(counts.values()), listed
            )

    def validate(self, epoch: int) -> dict[str, float]:
        accuracies = {d: r.accuracy for d, r in self._evaluate_val().items()}
        for domain, accuracy in list(accuracies.items()):
            train_accuracy = self.state.train_accuracy.get(domain, 0.0)
            if is_collapsed(train_accuracy, accuracy, self.model.domains[domain]):
                accuracies[domain] = self._handle_collapse(domain, train_accuracy, accuracy)
        return accuracies

    def _handle_collapse(self, domain: str, train_accuracy: float, accuracy: float) -> float:
        logger.warning(
            "domain %s: train accuracy %.1f%% but eval-mode accuracy %.1f%% (chance %.1f%%): "
            "its batch-norm running statistics do not describe its data (the collapse seen in "
            "the official daimlerpedcls log). %s",
            domain,
            train_accuracy,
            accuracy,
            100.0 / self.model.domains[domain],
            "Re-estimating them on training images."
            if self.config.run.bn_guard
            else "Set run.bn_guard=true to re-estimate them, "
            "or run `multidomain eval --bn-reestimate`.",
        )
        self.log.write(
            "bn_collapse",
            self.state.global_step,
            domain=domain,
            train_accuracy=train_accuracy,
            eval_accuracy=accuracy,
        )
        if not self.config.run.bn_guard:
            return accuracy
        plan = eval_plan(self.train_samples, self.config.data.batch_size, domain=domain)
        reestimate_bn(self.model, domain, self.train_batches, plan, self.device)
        fixed = self._evaluate_val(domain)[domain].accuracy
        logger.warning("domain %s: eval accuracy after BN re-estimation: %.1f%%", domain, fixed)
        return fixed

    def _evaluate_val(self, domain: str | None = None) -> dict:
        """Validation results of every domain (or of ``domain``), split over the ranks."""
        config = self.config
        plan = eval_plan(
            self.val_samples, config.data.eval_batch_size, self.info.rank, self.info.world, domain
        )
        return evaluate(
            self.net, self.val_batches, plan, self.device, config.run.precision, self.info
        )

    def _best_update(self, accuracies: dict[str, float], epoch: int) -> BestUpdate:
        best, best_epoch = self.state.best, self.state.best_epoch
        if self.per_domain_best:
            improved = {d for d, a in accuracies.items() if a > best.get(d, -math.inf)}
            for domain in improved:
                best[domain], best_epoch[domain] = accuracies[domain], epoch
            return BestUpdate(frozenset(improved), shared=False)
        mean = sum(accuracies.values()) / len(accuracies)
        if mean <= best.get("mean", -math.inf):
            return BestUpdate()
        best["mean"], best_epoch["mean"] = mean, epoch
        best.update(accuracies)
        return BestUpdate(frozenset(self.model.domains), shared=True)


def _finite_gradients(model: torch.nn.Module) -> bool:
    finite = [torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None]
    return bool(torch.stack(finite).all()) if finite else True


def run_training(
    config: TrainConfig | None, run_dir: str | Path, resume: bool = False
) -> Path | None:
    """Train (or resume) a run in ``run_dir``, in this process or as one rank of a torchrun job.

    Everything is checked before anything is written: the folder (a new run goes only into a
    missing or empty one), the config, the data and the model. The folder is locked while the
    run holds it. Under torchrun every rank checks, rank 0 alone locks and writes, and a rank
    that loses the others (one died, or hung past ``run.dist_timeout``) raises
    :class:`~multidomain.errors.RankLost`.

    Returns:
        The folder of the final model, or None when ``run.max_steps`` stopped the run first.
    """
    run_dir = Path(run_dir)
    config = resolve_run_config(run_dir, config, resume)
    started = env_info().world > 1 and not dist.is_initialized()
    info = init_distributed(config.run.dist_timeout)
    try:
        return _train_in(run_dir, config, resume, info)
    except RuntimeError as err:
        if not is_lost_rank(err, info):
            raise
        again = f"run the same command with --out {run_dir} --resume"
        raise lost_rank_error(err, info, config.run.dist_timeout, again) from err
    finally:
        end_distributed(started)


def _train_in(run_dir: Path, config: TrainConfig, resume: bool, info: DistInfo) -> Path | None:
    barrier(info)  # every rank has checked the folder before rank 0 writes to it
    claim = claim_run_dir(run_dir, new=not resume) if info.is_main else contextlib.nullcontext()
    with claim:
        barrier(info)  # rank 0 has cleared crash leftovers: the checkpoints may be read
        trainer = Trainer(config, run_dir)
        if info.is_main:
            fingerprint = data_fingerprint(trainer.root, config.data.domains)
            if resume:
                check_data(run_dir, trainer.root, fingerprint)
            write_config(run_dir, config)
            if not resume:
                record_data(run_dir, trainer.root, fingerprint)
        if not trainer.fit():
            logger.info(
                "stopped at run.max_steps=%s (step %d): no model yet; continue with "
                "`multidomain train --out %s --resume`",
                config.run.max_steps,
                trainer.state.global_step,
                run_dir,
            )
            return None
    return run_dir / "model"
