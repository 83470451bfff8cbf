"""Training details: weight averaging, test-time augmentation, the time summary, torch.compile, shared dataset statistics, whitening, a repair after a kill."""

import json

import numpy as np
import pytest
import torch
from test_train import small_config

from cnnlab.data.arrays import Split
from cnnlab.data.datasets import DataCache, load_dataset
from cnnlab.data.loader import DeviceLoader, Normalization
from cnnlab.evaluation.metrics import predict_logits
from cnnlab.evaluation.precision import resolve_precision
from cnnlab.inference.evaluate import evaluate_checkpoint
from cnnlab.models.layers import PatchWhitening
from cnnlab.training.averaging import WeightAverage
from cnnlab.training.checkpoint import load_checkpoint
from cnnlab.training.loop import train
from cnnlab.training.prepare import make_loaders


def test_weight_average_follows_the_ema_formula():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.5)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(8, 2))  # moves the BN running statistics and its batch counter
    average.update(step=100)  # past the warm-up: decay 0.5
    torch.testing.assert_close(average.model[0].weight, start + 0.5)
    assert average.model[1].num_batches_tracked.item() == 1
    assert not average.model[0].weight.requires_grad
    # At step 0 the warm-up decay is 1/10: the average jumps most of the way to the model.
    fresh = WeightAverage(model, decay=0.999)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    fresh.update(step=0)
    torch.testing.assert_close(fresh.model[0].weight, model[0].weight - 0.1)


def test_averaged_weights_are_what_training_reports_and_inference_uses(data_dir, tmp_path):
    cfg = small_config(data_dir, epochs=1, ema_decay=0.95, optimizer={"name": "adam", "lr": 3e-3})
    summary = train(cfg, tmp_path / "run").summary
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    raw, avg = ckpt.state_dict, ckpt.averaged_state_dict
    assert avg is not None and not torch.equal(raw["c1.weight"], avg["c1.weight"])
    torch.testing.assert_close(ckpt.build_model().state_dict()["c1.weight"], avg["c1.weight"])
    result = evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt", out=tmp_path / "cm.png")
    assert result.accuracy == pytest.approx(summary.final.test_acc, abs=1e-6)


def test_flip_tta_averages_an_image_and_its_mirror():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 3, 2))
    images = np.arange(4 * 6, dtype=np.uint8).reshape(4, 1, 2, 3)
    loader = DeviceLoader(
        Split(images, np.zeros(4, dtype=np.int64)), Normalization((0.0,), (1.0,)), 2
    )
    precision = resolve_precision("fp32", "cpu")
    plain, _ = predict_logits(model, loader, precision)
    flipped, _ = predict_logits(model, loader, precision, tta="flip")
    x = torch.from_numpy(images).float() / 255
    with torch.no_grad():
        expected = (model(x) + model(x.flip(3))) / 2
    torch.testing.assert_close(flipped, expected)
    assert not torch.allclose(plain, flipped)


@pytest.mark.parametrize("mode", ["flip-translate", "translate"])
def test_translate_tta_weighs_the_centre_half_and_two_shifts_a_quarter(mode):
    """flip-translate averages each view with its mirror image; translate (for digits,
    whose mirror images are other symbols or none) does not."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4, 3))
    images = np.random.default_rng(0).integers(0, 256, (5, 1, 3, 4), dtype=np.uint8)
    loader = DeviceLoader(
        Split(images, np.zeros(5, dtype=np.int64)), Normalization((0.0,), (1.0,)), 2
    )
    logits, _ = predict_logits(model, loader, resolve_precision("fp32", "cpu"), mode)
    x = images.astype(np.float32) / 255
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    views = [x, padded[:, :, :3, :4], padded[:, :, 2:, 2:]]  # centre, up-left, down-right

    def judged(view: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(view))
        return (model(t) + model(t.flip(3))) / 2 if mode == "flip-translate" else model(t)

    with torch.no_grad():
        expected = judged(views[0]) / 2 + (judged(views[1]) + judged(views[2])) / 4
    torch.testing.assert_close(logits, expected)
    flip_only, _ = predict_logits(model, loader, resolve_precision("fp32", "cpu"), "flip")
    assert not torch.allclose(logits, flip_only)
    with pytest.raises(ValueError, match="flip-translate, translate"):
        predict_logits(model, loader, resolve_precision("fp32", "cpu"), "mirror")


def test_summary_splits_time_into_steps_evaluation_and_loading(data_dir, tmp_path):
    summary = train(small_config(data_dir, epochs=1), tmp_path / "run").summary
    assert 0 < summary.step_seconds < summary.train_seconds <= summary.wall_seconds
    assert 0 < summary.eval_seconds < summary.wall_seconds


@pytest.mark.slow
def test_compiled_training_matches_eager_closely(data_dir, tmp_path):
    eager = train(small_config(data_dir, epochs=1), tmp_path / "eager").summary
    compiled = train(small_config(data_dir, epochs=1, compile=True), tmp_path / "compiled").summary
    # Same seed and data: fused kernels round differently, but only in the last bits.
    assert compiled.final.test_loss == pytest.approx(eager.final.test_loss, rel=1e-3)


def test_runs_on_the_same_dataset_share_its_padding_and_statistics(data_dir):
    cache = DataCache()
    data = cache.dataset("mnist", data_dir)
    assert cache.dataset("mnist", data_dir) is data  # loaded once
    precision = resolve_precision("fp32", "cpu")
    first = make_loaders(small_config(data_dir), data, precision, (32, 32), cache)
    again = make_loaders(small_config(data_dir, seed=1), data, precision, (32, 32), cache)
    # On the CPU the loader's tensor shares the padded array's memory.
    assert again.train.images.data_ptr() == first.train.images.data_ptr()  # reused
    held_out = make_loaders(
        small_config(data_dir, val_fraction=0.2), data, precision, (32, 32), cache
    )
    assert held_out.val is not None
    assert held_out.train.num_samples < first.train.num_samples
    reloaded = load_dataset("mnist", data_dir)  # equal arrays, another object: recomputed
    other = make_loaders(small_config(data_dir), reloaded, precision, (32, 32), cache)
    assert other.train.images.data_ptr() != first.train.images.data_ptr()
    uncached = make_loaders(small_config(data_dir), data, precision, (32, 32))
    assert uncached.train.images.data_ptr() != first.train.images.data_ptr()
    assert other.normalization == first.normalization
    assert first.input_shape == (1, 32, 32)


def test_a_whitening_layer_is_fitted_to_the_training_images_and_stays_frozen(data_dir, tmp_path):
    model_file = tmp_path / "whitened.toml"
    model_file.write_text(
        'layer = [\n  { type = "whiten", kernel = 2 }, { type = "relu" },\n'
        '  { type = "conv", filters = 8, kernel = 3 }, { type = "relu" },\n'
        '  { type = "global_max_pool" }, { type = "dense" },\n]\n'
    )
    cfg = small_config(data_dir, model=str(model_file), epochs=1, ema_decay=0.9)
    train(cfg, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    data = load_dataset("mnist", data_dir)
    loaders = make_loaders(cfg, data, resolve_precision("fp32", "cpu"))
    expected = PatchWhitening(1, (2, 2), eps=5e-4)
    expected.fit(loaders.train.head(5000))
    for weights in (saved.state_dict, saved.averaged_state_dict):
        torch.testing.assert_close(weights["whiten1.weight"], expected.weight, rtol=0, atol=0)
        assert weights["whiten1.bias"].abs().sum() > 0  # the bias trained


def test_a_kill_after_the_final_checkpoint_is_repaired_on_resume(data_dir, tmp_path):
    """Killed between the last checkpoint's rename and the files after it: the resume trains
    nothing and rebuilds metrics.csv, test_predictions.npz and summary.json from it."""
    from cnnlab.evaluation.saved import load_predictions

    cfg = small_config(data_dir, epochs=2)
    run = tmp_path / "run"
    train(cfg, run)
    before = {n: (run / n).read_bytes() for n in ("metrics.csv", "summary.json")}
    predictions = load_predictions(run)
    lines = before["metrics.csv"].decode().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:2]))  # epoch 2's row was never written
    (run / "test_predictions.npz").unlink()
    (run / "summary.json").unlink()
    record = train(cfg, run, resume=True)
    assert [r.epoch for r in record.history] == [1, 2]
    assert (run / "metrics.csv").read_bytes() == before["metrics.csv"]
    again = load_predictions(run)
    assert again is not None and again.epoch == 2
    assert (again.pred == predictions.pred).all() and (again.prob == predictions.prob).all()
    assert (
        json.loads((run / "summary.json").read_text())["final"]
        == json.loads(before["summary.json"])["final"]
    )


def test_max_steps_cuts_a_run_short_and_makes_it_another_run(data_dir, tmp_path):
    """A smoke test: five optimizer steps in all, across epochs; a limited run has its own
    run id, and the limit is not part of older runs' ids (they keep theirs)."""
    import cnnlab
    from cnnlab.config.identity import identity_hash, run_identity
    from cnnlab.config.schema import config_dict, make_config

    settings = dict(model="mlp", dataset="mnist", data_dir=str(data_dir), epochs=3, batch_size=128,
                    precision="fp32")  # fmt: skip
    limited = cnnlab.train(max_steps=5, out=tmp_path / "limited", **settings)
    steps_per_epoch = 600 // 128
    assert limited.summary.epochs == 2 and limited.summary.stopped_early
    assert steps_per_epoch < 5 < 2 * steps_per_epoch
    from cnnlab.models.registry import resolve_model

    spec = resolve_model("mlp", {}).model_dump(mode="json")
    plain = identity_hash(run_identity(config_dict(make_config(settings)), spec))
    cut = identity_hash(run_identity(config_dict(make_config({**settings, "max_steps": 5})), spec))
    assert plain != cut
    assert "max_steps" not in run_identity(config_dict(make_config(settings)), spec)["settings"]


def test_a_batch_limit_and_a_training_subset_make_a_quick_look_that_is_another_run(
    data_dir, tmp_path
):
    import json

    import cnnlab

    settings = dict(model="mlp", dataset="mnist", data_dir=str(data_dir), epochs=2, batch_size=50,
                    precision="fp32")  # fmt: skip
    limited = cnnlab.train(limit_batches=3, out=tmp_path / "limited", **settings)
    seen = [row.images_per_s * row.epoch_seconds for row in limited.history]
    assert [round(x) for x in seen] == [150, 150]  # 3 batches of 50 an epoch
    subset = cnnlab.train(train_subset=100, out=tmp_path / "subset", **settings)
    assert [round(r.images_per_s * r.epoch_seconds) for r in subset.history] == [100, 100]
    full = cnnlab.train(out=tmp_path / "full", **settings)
    ids = {json.loads((tmp_path / d / "summary.json").read_text())["run_id"]
           for d in ("limited", "subset", "full")}  # fmt: skip
    assert len(ids) == 3 and full.summary.epochs == 2


def test_half_an_epoch_points_at_the_quick_look_options(capsys):
    from cnnlab.cli.app import main

    with pytest.raises(SystemExit) as stop:
        main(["train", "--epochs", "0.5"])
    assert stop.value.code == 2
    assert "for part of one: --limit-batches N or --max-steps N" in capsys.readouterr().err
