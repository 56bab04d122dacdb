"""The central precision policy: RLlib PPO (new API stack) fed by many trials' episodes.

One `RLModule` (inference copy) answers batched requests; one `LearnerGroup` (local
Learner, PPO loss with GAE via RLlib's learner connectors) trains on `SingleAgentEpisode`s,
one per (trial, row). Trajectories are kept as light Python lists while open and turned
into episodes only when a PPO update runs, so serving stays cheap. Plain Python, no Ray
actor: the server (`server.py`) wraps it, and tests drive it directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core import DEFAULT_MODULE_ID, Columns
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

from distlmk.config import PolicyConfig
from distlmk.protocol import ACTION_SPACE, NO_ACTION, OBSERVATION_SPACE, Feature, Logit, StepRequest

_LOSS_KEYS = ("policy_loss", "vf_loss", "mean_kl_loss", "entropy", "vf_explained_var")


@dataclass
class _Trajectory:
    """An open episode of one (trial, row): obs has one more entry than actions."""

    is_trial_row: bool
    obs: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    logits: list = field(default_factory=list)
    logp: list = field(default_factory=list)
    pending: tuple | None = None  # (action, logits, logp) waiting for its reward
    terminated: bool = False
    truncated: bool = False
    total_return: float = 0.0  # over the whole episode, across cuts

    def to_episode(self) -> SingleAgentEpisode:
        return SingleAgentEpisode(
            observations=list(self.obs),
            actions=list(self.actions),
            rewards=list(self.rewards),
            extra_model_outputs={
                Columns.ACTION_DIST_INPUTS: list(self.logits),
                Columns.ACTION_LOGP: list(self.logp),
            },
            terminated=self.terminated,
            truncated=self.truncated,
            observation_space=OBSERVATION_SPACE,
            action_space=ACTION_SPACE,
            len_lookback_buffer=0,
        )

    def cut(self) -> _Trajectory:
        """Keep only the last observation (and pending action) for the successor chunk."""
        nxt = _Trajectory(
            self.is_trial_row,
            obs=[self.obs[-1]],
            pending=self.pending,
            total_return=self.total_return,
        )
        return nxt


def build_ppo_config(cfg: PolicyConfig) -> PPOConfig:
    return (
        PPOConfig()
        .environment(observation_space=OBSERVATION_SPACE, action_space=ACTION_SPACE)
        .training(
            lr=cfg.lr,
            gamma=cfg.gamma,
            lambda_=cfg.lambda_,
            clip_param=cfg.clip_param,
            entropy_coeff=cfg.entropy_coeff,
            vf_loss_coeff=cfg.vf_loss_coeff,
            num_epochs=cfg.num_epochs,
            minibatch_size=cfg.minibatch_size,
            train_batch_size_per_learner=cfg.train_batch_rows,
        )
        .rl_module(
            model_config=DefaultModelConfig(fcnet_hiddens=list(cfg.hidden), vf_share_layers=False)
        )
        .learners(num_learners=0)
        .debugging(seed=cfg.seed)
    )


class PolicyCore:
    def __init__(self, cfg: PolicyConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.ppo = build_ppo_config(cfg)
        spaces = {DEFAULT_MODULE_ID: (OBSERVATION_SPACE, ACTION_SPACE)}
        self.learner_group = self.ppo.build_learner_group(spaces=spaces)
        self.module = self.ppo.get_rl_module_spec(spaces=spaces, inference_only=True).build()
        self.dist_cls = self.module.get_exploration_action_dist_cls()
        if cfg.checkpoint:
            self.restore(cfg.checkpoint)
        else:
            self._bias_against_ending()
        self.sync_inference()
        self.open: dict[tuple[str, int], _Trajectory] = {}
        self.finished: list[_Trajectory] = []
        self.collected = 0  # transitions not yet trained on
        self.stats = {
            "updates": 0,
            "env_steps": 0,
            "decisions": 0,
            "requests": 0,
            "episodes": 0,
            "trial_episodes": 0,
            "mean_trial_return": None,
            "mean_landmark_return": None,
            "last_update_s": None,
            "losses": {},
        }
        self._returns = {"trial": [], "landmark": []}

    # --- weights --------------------------------------------------------------------
    def _bias_against_ending(self) -> None:
        """Start with P(end/stop) small, so a fresh population does not stop at random."""
        shift = self.cfg.end_logit_bias

        def shift_end_logit(learner) -> None:
            head = learner.module[DEFAULT_MODULE_ID].pi  # the policy head; its last Linear gives the logits
            out = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
            assert out.out_features == len(Logit), "the policy head's logits are not in protocol.Logit order"
            with torch.no_grad():
                out.bias[Logit.END] += shift

        self.learner_group.foreach_learner(shift_end_logit)

    def sync_inference(self) -> None:
        self.module.set_state(self.learner_group.get_weights()[DEFAULT_MODULE_ID])

    def weights(self) -> dict[str, np.ndarray]:
        return {
            k: np.asarray(v) for k, v in self.learner_group.get_weights()[DEFAULT_MODULE_ID].items()
        }

    def save(self, path: str) -> None:
        self.learner_group.save_to_path(path)

    def restore(self, path: str) -> None:
        self.learner_group.restore_from_path(path)
        self.sync_inference()

    # --- serving --------------------------------------------------------------------
    def act(self, requests: list[StepRequest]) -> list[np.ndarray]:
        """Record rewards for previous actions and choose new ones, one forward pass for all."""
        out = [np.full((len(req.rows), 2), NO_ACTION, np.int64) for req in requests]
        need: list[tuple[int, int, _Trajectory]] = []  # (request index, row position, trajectory)
        for qi, req in enumerate(requests):
            self.stats["requests"] += 1
            for j, row in enumerate(req.rows):
                traj = self._record_step(req, j, int(row))
                if traj is not None:
                    need.append((qi, j, traj))
        if need:
            obs = np.stack([traj.obs[-1] for _, _, traj in need]).astype(np.float32)
            actions, logits, logp = self._forward(obs)
            for i, (qi, j, traj) in enumerate(need):
                traj.pending = (actions[i].copy(), logits[i].copy(), np.float32(logp[i]))
                out[qi][j] = actions[i]
            self.stats["decisions"] += len(need)
        return out

    def _record_step(self, req: StepRequest, j: int, row: int) -> _Trajectory | None:
        """Book row j of a request into its trajectory; the trajectory if it wants an action."""
        key = (req.trial_id, row)
        obs = req.obs[j]
        terminated = bool(req.terminated[j])
        done = terminated or req.truncated
        traj = self.open.get(key)
        if traj is not None and traj.pending is not None and req.rewards is not None:
            self._complete_transition(traj, obs, float(req.rewards[j]))
            if done:
                traj.terminated, traj.truncated = terminated, not terminated
                self._finish(key)
                return None
            return traj
        if traj is not None:  # a lost reply (timeout, restart): drop the dangling step
            self._close(key, truncated=True)
        if done:
            return None
        traj = self.open[key] = _Trajectory(is_trial_row=bool(obs[Feature.IS_TRIAL_ROW] > 0.5), obs=[obs])
        return traj

    def _complete_transition(self, traj: _Trajectory, obs: np.ndarray, reward: float) -> None:
        a, lg, lp = traj.pending
        traj.actions.append(a)
        traj.logits.append(lg)
        traj.logp.append(lp)
        traj.rewards.append(reward)
        traj.obs.append(obs)
        traj.total_return += reward
        traj.pending = None
        self.collected += 1
        self.stats["env_steps"] += 1

    def _forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sample (explore) or take the most likely (greedy) actions; with logits and log-probs."""
        obs_t = torch.from_numpy(obs)
        with torch.no_grad():
            if self.cfg.explore:
                logits = self.module.forward_exploration({Columns.OBS: obs_t})[Columns.ACTION_DIST_INPUTS]
                dist = self.dist_cls.from_logits(logits)
                actions = dist.sample()
            else:
                logits = self.module.forward_inference({Columns.OBS: obs_t})[Columns.ACTION_DIST_INPUTS]
                dist = self.dist_cls.from_logits(logits)
                actions = dist.to_deterministic().sample()
            logp = dist.logp(actions)
        return actions.numpy(), logits.numpy(), logp.numpy()

    def _finish(self, key: tuple[str, int]) -> None:
        traj = self.open.pop(key)
        kind = "trial" if traj.is_trial_row else "landmark"
        self._returns[kind].append(traj.total_return)
        self._returns[kind] = self._returns[kind][-1000:]
        self.stats["episodes"] += 1
        self.stats["trial_episodes"] += int(traj.is_trial_row)
        if traj.actions and not self.cfg.freeze:
            self.finished.append(traj)

    def _close(self, key: tuple[str, int], truncated: bool) -> None:
        traj = self.open.get(key)
        if traj is None:
            return
        traj.pending = None
        traj.truncated = truncated
        self._finish(key)

    def end_trial(self, trial_id: str) -> int:
        """Truncate every open episode of a trial (PBT exploit, retry, lost contact)."""
        keys = [k for k in self.open if k[0] == trial_id]
        for k in keys:
            self._close(k, truncated=True)
        return len(keys)

    def end_all(self) -> None:
        """Drop every open and collected episode (after a warm start, before serving trials)."""
        self.open.clear()
        self.finished = []
        self.collected = 0
        self._returns = {"trial": [], "landmark": []}
        for k in ("decisions", "requests", "episodes", "trial_episodes"):
            self.stats[k] = 0

    # --- learning -------------------------------------------------------------------
    def ready_to_train(self) -> bool:
        return not self.cfg.freeze and self.collected >= self.cfg.train_batch_rows

    def collect_batch(self) -> list[_Trajectory]:
        """Finished trajectories plus the so-far chunks of open ones (cut, like ep.cut()).

        Cheap (no episode building): the server calls it on its event loop, then hands the
        chunks, which serving no longer touches, to `update` in a worker thread."""
        batch = self.finished
        self.finished = []
        for key, traj in self.open.items():
            if traj.actions:
                batch.append(traj)
                self.open[key] = traj.cut()
        self.collected = 0
        return batch

    def update(self, trajectories: list[_Trajectory]) -> dict:
        """One PPO update (several epochs of minibatches) on the given trajectories."""
        t0 = time.perf_counter()
        episodes = [t.to_episode().to_numpy() for t in trajectories]
        res = self.learner_group.update(
            episodes=episodes,
            timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self.stats["env_steps"]},
            num_epochs=self.cfg.num_epochs,
            minibatch_size=self.cfg.minibatch_size,
        )
        r = res[DEFAULT_MODULE_ID] if isinstance(res, dict) else res[0][DEFAULT_MODULE_ID]
        losses = {}
        for k in _LOSS_KEYS:
            if k in r:
                v = r[k]
                v = v.peek() if hasattr(v, "peek") else v
                losses[k] = float(np.mean(v))
        self.stats["updates"] += 1
        self.stats["last_update_s"] = time.perf_counter() - t0
        self.stats["losses"] = losses
        return losses

    def train(self) -> dict:
        losses = self.update(self.collect_batch())
        self.sync_inference()
        return losses

    def summary(self) -> dict:
        s = dict(self.stats)
        for kind in ("trial", "landmark"):
            vals = self._returns[kind][-200:]
            s[f"mean_{kind}_return"] = float(np.mean(vals)) if vals else None
        s["open_episodes"] = len(self.open)
        return s
