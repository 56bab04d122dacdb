import numpy as np
import torch

from distlmk.config import SigmaConfig
from distlmk.control import EpochFeedback, make_controller


def fb(epoch, loss, err=None):
    loss = np.asarray(loss, float)
    return EpochFeedback(epoch, 20, np.ones_like(loss) if err is None else err, loss)


def test_fixed_never_changes():
    c = make_controller(SigmaConfig(method="fixed", init=2.5), 4)
    for e in range(1, 6):
        c.observe(fb(e, [1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose(c.sigma_values(), 2.5)
    assert c.parameters() == [] and c.penalty() == 0.0


def test_adaloss_shrinks_only_landmarks_whose_loss_settles():
    c = make_controller(
        SigmaConfig(method="adaloss", init=4.0, min=1.0, adaloss_window=2, adaloss_shrink=0.5), 2
    )
    # landmark 0: noisy then flat (variance falls); landmark 1: variance grows
    l0 = [1.0, 2.0, 1.0, 1.0]
    l1 = [1.0, 1.0, 1.0, 3.0]
    for e, (a, b) in enumerate(zip(l0, l1, strict=True), 1):
        c.observe(fb(e, [a, b]))
    np.testing.assert_allclose(c.sigma_values(), [2.0, 4.0])
    state = c.state_dict()
    c2 = make_controller(
        SigmaConfig(method="adaloss", init=4.0, adaloss_window=2, adaloss_shrink=0.5), 2
    )
    c2.load_state_dict(state)
    np.testing.assert_allclose(c2.sigma_values(), [2.0, 4.0])


def test_learned_sigma_is_trained_by_the_loss_and_held_by_the_regulariser():
    cfg = SigmaConfig(method="learned", init=3.0, min=1.0, max=8.0, learned_reg=0.0)
    c = make_controller(cfg, 2)
    opt = torch.optim.SGD(c.parameters(), lr=0.1)
    # area-normalised target: a larger sigma lowers the target energy, so an all-zero
    # prediction's loss falls as sigma grows; without a regulariser sigma rises
    from distlmk.heatmap import GaussianHeatmapCodec

    codec = GaussianHeatmapCodec((32, 32))
    pts = torch.tensor([[[16.0, 16.0], [8.0, 8.0]]])
    for _ in range(5):
        s = c.sigma()
        loss = (codec.encode(pts, s) * c.target_gain(s)).pow(2).sum() + c.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.all(c.sigma_values() > 3.0)
    reg = regulariser_only("learned")
    assert np.all(reg.sigma_values() < 3.0)


def test_learned_anisotropic_trains_its_covariance_and_round_trips():
    from distlmk.heatmap import GaussianHeatmapCodec

    cfg = SigmaConfig(method="learned_anisotropic", init=3.0, min=1.0, max=8.0, learned_reg=0.0)
    c = make_controller(cfg, 2)
    assert c.name == "learned_anisotropic" and len(c.parameters()) == 2
    np.testing.assert_allclose(c.cov_values(), [[3.0, 3.0, 0.0]] * 2, rtol=1e-6)
    codec = GaussianHeatmapCodec((32, 32))
    pts = torch.tensor([[[16.0, 16.0], [8.0, 8.0]]])
    # at init (round targets) the targets equal `learned`'s exactly
    learned = make_controller(SigmaConfig(method="learned", init=3.0), 2)
    torch.testing.assert_close(c.targets(codec, pts), learned.targets(codec, pts))
    # a prediction elongated along the diagonal: the loss pulls sx, sy apart and turns the angle
    pred = codec.encode_anisotropic(pts, torch.tensor([[5.0, 1.5, 0.6], [5.0, 1.5, 0.6]]))
    with torch.no_grad():
        c.log_sigma_xy[:, 0] += 0.1  # break the round symmetry, where d loss / d angle = 0
    loss = ((c.targets(codec, pts) - pred) ** 2).sum() + c.penalty()
    loss.backward()
    assert torch.all(c.log_sigma_xy.grad.abs() > 0) and torch.all(c.angle.grad.abs() > 0)
    opt = torch.optim.Adam(c.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        ((c.targets(codec, pts) - pred) ** 2).sum().backward()
        opt.step()
    cov = c.cov_values()
    assert np.all(cov[:, 0] > 1.5 * cov[:, 1])  # elongated like the prediction
    assert np.all(np.abs(cov[:, 2] - 0.6) < 0.2)
    np.testing.assert_allclose(c.sigma_values(), np.sqrt(cov[:, 0] * cov[:, 1]), rtol=1e-6)
    c2 = make_controller(cfg, 2)
    c2.load_state_dict(c.state_dict())
    np.testing.assert_allclose(c2.cov_values(), cov, rtol=1e-6)
    reg = regulariser_only("learned_anisotropic")
    assert np.all(reg.cov_values()[:, :2] < 3.0)


def test_learned_anisotropic_reports_the_long_axis_first():
    c = make_controller(SigmaConfig(method="learned_anisotropic", init=2.0), 2)
    with torch.no_grad():
        c.log_sigma_xy.copy_(torch.log(torch.tensor([[1.0, 3.0], [3.0, 1.0]])))
        c.angle.copy_(torch.tensor([0.2, -0.3]))
    np.testing.assert_allclose(c.cov_values(), [[3.0, 1.0, np.pi / 2 + 0.2], [3.0, 1.0, np.pi - 0.3]], rtol=1e-6)


def regulariser_only(method: str):
    """A learned controller after 5 SGD steps on its regulariser alone (which must shrink sigma)."""
    reg = make_controller(SigmaConfig(method=method, init=3.0, learned_reg=10.0), 2)
    opt = torch.optim.SGD(reg.parameters(), lr=0.01)
    for _ in range(5):
        opt.zero_grad()
        reg.penalty().backward()
        opt.step()
    return reg
