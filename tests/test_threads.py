"""Explanations of one model from many threads equal sequential ones; different models
run in parallel (a per-model lock, never a global one)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import xai_core

from conftest import keras_state, torch_state
from models import images

METHODS = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 8},
    "smoothgrad": {"n_samples": 4, "seed": 1},
    "gradient_shap": {"background": images(3, seed=7), "n_samples": 4, "seed": 2},
    "activations": {"layers": ["conv", "drop"]},
    "grad_cam": {"layer": "conv"},
    "kernel_shap": {"background": images(2, seed=7), "n_samples": 30, "seed": 3},
    "lime": {"n_samples": 30, "seed": 4},
    "deep_shap": {"background": images(3, seed=8)},
}


class DropoutCNN(torch.nn.Module):
    """Dropout makes a forward pass in train mode visibly different from eval mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.drop = torch.nn.Dropout(0.5)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.relu(self.conv(x))).mean((2, 3)))


def result_of(expl):
    if expl.attributions is not None:
        return expl.attributions
    return np.concatenate([a.reshape(-1) for a in expl.activations.values()])


def test_many_threads_on_one_model_get_the_sequential_results():
    model = DropoutCNN().train()  # the user's mode: train, restored after every call
    before = torch_state(model)
    jobs = [(m, images(2 + i % 3, seed=i)) for i, m in enumerate(list(METHODS) * 3)]
    sequential = [result_of(xai_core.explain(model, x, m, **METHODS[m])) for m, x in jobs]
    with ThreadPoolExecutor(6) as pool:
        threaded = list(
            pool.map(
                lambda job: result_of(xai_core.explain(model, job[1], job[0], **METHODS[job[0]])),
                jobs,
            )
        )
    for (method, _), a, b in zip(jobs, sequential, threaded):
        np.testing.assert_allclose(b, a, rtol=1e-6, err_msg=method)
    assert torch_state(model) == before and model.training


class Sleepy(torch.nn.Module):
    """Records when its forward passes run."""

    def __init__(self, log: list, name: str) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.log, self.name = log, name

    def forward(self, x):
        start = time.perf_counter()
        time.sleep(0.15)
        self.log.append((self.name, start, time.perf_counter()))
        return self.fc(x)


def overlapping(log, a, b) -> bool:
    return any(
        s1 < e2 and s2 < e1
        for n1, s1, e1 in log
        for n2, s2, e2 in log
        if n1 == a and n2 == b and (n1, s1) != (n2, s2)
    )


def test_different_models_run_in_parallel_and_one_model_serially():
    log: list = []
    first, second = Sleepy(log, "first"), Sleepy(log, "second")
    x = np.zeros((2, 4), np.float32)
    barrier = threading.Barrier(2)

    def run(model):
        barrier.wait()
        xai_core.explain(model, x, "activations", layers=["fc"])

    threads = [threading.Thread(target=run, args=(m,)) for m in (first, second)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert overlapping(log, "first", "second")
    log.clear()
    threads = [threading.Thread(target=run, args=(first,)) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not overlapping(log, "first", "first")


def test_a_keras_subclassed_model_from_many_threads():
    keras = pytest.importorskip("keras")
    import tensorflow as tf

    class Sub(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(8, name="hidden")
            self.out = keras.layers.Dense(3, name="out")

        def call(self, x):
            return self.out(tf.nn.relu(self.hidden(x)))

    keras.utils.set_random_seed(0)
    model = Sub()
    xs = [
        np.random.default_rng(i).normal(size=(2 + i % 4, 5)).astype(np.float32) for i in range(12)
    ]
    model(xs[0])
    before = keras_state(model)
    sequential = [xai_core.explain(model, x, "activations", layers=["hidden"]) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(
            pool.map(lambda x: xai_core.explain(model, x, "activations", layers=["hidden"]), xs)
        )
    for a, b in zip(sequential, threaded):
        np.testing.assert_allclose(b.activations["hidden"], a.activations["hidden"], rtol=1e-6)
    assert keras_state(model) == before
