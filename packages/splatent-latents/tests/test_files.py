import io
import os
import pickle

import pytest
import torch

from splatent_latents import LatentError, load_latent, save_latent


def test_round_trip_is_a_standalone_float32_tensor(tmp_path):
    batch = torch.randn(16, 4, 30, 40, dtype=torch.bfloat16)
    save_latent(tmp_path / "a.pt", batch[3])
    raw = torch.load(tmp_path / "a.pt", weights_only=True)
    assert raw.dtype == torch.float32 and raw.shape == (4, 30, 40)
    assert torch.equal(raw, batch[3].float())
    assert (tmp_path / "a.pt").stat().st_size < 4 * 30 * 40 * 4 + 2000  # not the whole batch's storage
    assert torch.equal(load_latent(tmp_path / "a.pt", shape=(4, 30, 40)), raw)
    assert sorted(os.listdir(tmp_path)) == ["a.pt"]


def test_leading_batch_axis_of_one_is_accepted(tmp_path):
    torch.save(torch.ones(1, 4, 5, 6, dtype=torch.float16), tmp_path / "orig.pt")
    latent = load_latent(tmp_path / "orig.pt")
    assert latent.shape == (4, 5, 6) and latent.dtype == torch.float32


@pytest.mark.parametrize("value,match", [
    (torch.zeros(2, 4, 8, 8), r"has shape \(2, 4, 8, 8\)"),
    (torch.zeros(8, 8), r"has shape \(8, 8\), expected \(C, h, w\)"),
    (torch.zeros(4, 8, 8, dtype=torch.int64), "holds torch.int64 values"),
    (torch.full((4, 2, 2), float("nan")), "NaN or infinite"),
    ({"latent": torch.zeros(4, 8, 8)}, "holds a dict, not a tensor"),
])
def test_bad_contents_are_named(tmp_path, value, match):
    torch.save(value, tmp_path / "bad.pt")
    with pytest.raises(LatentError, match=match) as err:
        load_latent(tmp_path / "bad.pt")
    assert str(tmp_path / "bad.pt") in str(err.value)


def test_the_channel_count_is_the_callers(tmp_path):
    save_latent(tmp_path / "a.pt", torch.zeros(32, 6, 8))  # taef2's 32 channels
    assert load_latent(tmp_path / "a.pt").shape == (32, 6, 8)  # any count unless one is asked for
    assert load_latent(tmp_path / "a.pt", channels=32).shape == (32, 6, 8)
    with pytest.raises(LatentError, match=r"has shape \(32, 6, 8\), expected \(4, h, w\)"):
        load_latent(tmp_path / "a.pt", channels=4)


def test_expected_shape_is_checked(tmp_path):
    save_latent(tmp_path / "a.pt", torch.zeros(4, 6, 8))
    with pytest.raises(LatentError, match=r"expected \(4, 60, 80\)"):
        load_latent(tmp_path / "a.pt", shape=(4, 60, 80))


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_code_and_garbage_are_refused(tmp_path):
    (tmp_path / "evil.pt").write_bytes(pickle.dumps(_Payload(), protocol=2))
    with pytest.raises(LatentError, match="cannot read latent file"):
        load_latent(tmp_path / "evil.pt")
    buffer = io.BytesIO()
    torch.save(torch.zeros(4, 2, 2), buffer)
    (tmp_path / "cut.pt").write_bytes(buffer.getvalue()[:100])
    with pytest.raises(LatentError, match="cannot read latent file"):
        load_latent(tmp_path / "cut.pt")
    with pytest.raises(LatentError, match="does not exist"):
        load_latent(tmp_path / "missing.pt")
