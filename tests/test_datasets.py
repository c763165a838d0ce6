import numpy as np
import pytest

from mdeblur_cli.datasets import RESERVED, TRAIN_SOURCES, list_datasets, load_eval_set
from mdeblur_cli.errors import MdeblurError
from mdeblur_cli.io import write_image


def test_reserved_images_are_never_training_sources():
    assert not set(RESERVED) & set(TRAIN_SOURCES)


def test_reserved_set_uses_the_fire_protocol():
    es = load_eval_set("reserved")
    assert not es.stand_in and len(es.pairs) == 4
    p = es.pairs[0]
    assert p.hr.shape[-1] == 2 * p.lr.shape[-1] and p.psf is not None
    assert es.protocol["sigma_lr_px"] == 1.5


def test_fire_stand_in_is_named_and_real_fire_is_found(tmp_path):
    es = load_eval_set("fire", data_root=tmp_path / "none")
    assert es.stand_in and "STAND-IN" in es.source and len(es.pairs) == 4
    images = tmp_path / "FIRE" / "Images"
    write_image(images / "A01_1.jpg", (np.random.default_rng(0).random((600, 1100, 3)) * 255).astype(np.uint8))
    es = load_eval_set("fire", data_root=tmp_path)
    assert not es.stand_in and len(es.pairs) == 2 and es.pairs[0].hr.shape == (3, 512, 512)
    assert next(d for d in list_datasets(tmp_path) if d["name"] == "fire")["real"]


def test_pinecones_stand_in_is_deterministic():
    a = load_eval_set("pinecones", limit=1)
    b = load_eval_set("pinecones", limit=1)
    assert a.stand_in and "STAND-IN" in a.source
    assert np.array_equal(a.pairs[0].lr.numpy(), b.pairs[0].lr.numpy())
    assert a.pairs[0].psf.shape[0] == 3


def test_folder_sets(tmp_path):
    hr_only = tmp_path / "hr_only"
    write_image(hr_only / "x.png", (np.random.default_rng(1).random((64, 80, 3)) * 255).astype(np.uint8))
    es = load_eval_set(str(hr_only))
    assert es.pairs[0].lr.shape == (3, 32, 40) and es.protocol["name"] == "FIRE"
    with pytest.raises(MdeblurError, match="not a dataset name"):
        load_eval_set(str(tmp_path / "missing"))
