"""Null worlds: the study's nets as they would be if nothing had been learned, for every distance and
activation claim.

A claim that already holds where nothing was learned says something about the init, not about the
tissues. Two worlds, built from the same seeds as the real nets:

- the **untrained world** (:func:`untrained_world`): every scratch net is its own init, regenerated
  from its seed exactly as training built it before the first step (:func:`init_states`); every
  fine-tuned net B|A(s) is A(s)'s *init* moved by a random displacement with the real fine-tune's size
  (per convolution weight, ||w_{B|A} - w_{A(s)}||; :func:`kneelib.compare.displacement.matched_displacement`).
  For scratch-vs-scratch claims (C1 and its controls), activation claims (C7) and CKA.
- the **displaced world** (:func:`displaced_world`): scratch nets as trained; every fine-tuned net
  B|A(s) is the *trained* A(s) moved by such a displacement. For the fine-tune claims (C2-C5): the real
  fine-tune moved each layer by this much, in a direction that learned something; the null moves it as
  far in a random one.

Tensors no distance reads (biases, batch-norm affine parameters and running statistics) are those of the
net the null fine-tune starts from: the init's in the untrained world (batch norm at weight 1, bias 0,
running mean 0 and variance 1, so in eval mode it passes activations through), the trained base's in the
displaced world. The displaced world's batch-norm statistics therefore belong to the base's weights, not
to the displaced ones, which is one reason its activations are not read (its claims are on weights only).
The head-bias calibration a fine-tune starts with (:func:`kneelib.nets.train.calibrate_head_bias`, which
needs the training slices) is not redone: it moves only ``head.bias``, which no distance reads.

:func:`null_claim_tables` runs the analyses' own functions (:mod:`kneelib.study.analyses`) on the two
worlds, so a null table has the real one's format by construction. Dice claims have no null world.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kneelib.compare import distance_tables
from kneelib.compare.displacement import matched_displacement
from kneelib.compare.distance_tables import SeedStates as States
from kneelib.core.profiles import Profile
from kneelib.data.context import DataContext
from kneelib.nets.run import NetSpec, train_config
from kneelib.nets.train import build_model
from kneelib.study import analyses, nine_nets

# Added to a fine-tuned net's run seed (NetSpec.run_seed, < 1000 * (seed + 1)) to seed its null
# displacement's directions: far from every training and null-init seed, and the same in both worlds.
DIRECTION_SEED_OFFSET = 10_000_000

State = dict[str, torch.Tensor]


def specs_by_name(profile: Profile, seed: int) -> dict[str, NetSpec]:
    """net name -> :class:`~kneelib.nets.run.NetSpec` of every net of ``profile``'s study for one seed."""
    return {spec.name: spec for spec in nine_nets.all_specs(seed, profile.tissues)}


def scratch_init(profile: Profile, spec: NetSpec) -> State:
    """The weights a scratch net starts training from: :func:`kneelib.nets.train.build_model` on its
    recipe (:func:`kneelib.nets.run.train_config`), so every init option of the profile (He draw from the
    run seed, head bias, ...) is the one training used."""
    model = build_model(train_config(profile, spec), None)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spec(specs: dict[str, NetSpec], name: str, seed: int) -> NetSpec:
    if name not in specs:
        raise KeyError(f"seed {seed}: {name!r} is not a net of the profile's study ({sorted(specs)})")
    return specs[name]


def init_states(profile: Profile, states: States) -> States:
    """Every net's starting weights, for the nets of ``states`` (seed -> net name -> state_dict).

    A scratch net's init is regenerated from its seed (:func:`scratch_init`); a fine-tuned net B|A(s)
    starts from its base's trained weights, ``states[seed]["A(s)"]`` (before the head-bias calibration,
    which changes only ``head.bias``). Raises KeyError for a net the profile's study does not have, or a
    fine-tuned net whose base is missing.
    """
    out: States = {}
    for seed, nets in states.items():
        specs = specs_by_name(profile, seed)
        out[seed] = {}
        for name in nets:
            spec = _spec(specs, name, seed)
            out[seed][name] = scratch_init(profile, spec) if spec.base is None else nets[spec.base.name]
    return out


def direction_seed(spec: NetSpec) -> int:
    """The seed of a fine-tuned net's null displacement directions."""
    return DIRECTION_SEED_OFFSET + spec.run_seed


def _world(profile: Profile, states: States, scratch_of: Callable[[int, str], State],
           start_of: Callable[[int, str], State]) -> States:
    """Scratch nets ``scratch_of(seed, name)``; each fine-tuned net ``start_of(seed, base name)`` plus a
    random displacement of its real size."""
    out: States = {}
    for seed, nets in states.items():
        specs = specs_by_name(profile, seed)
        out[seed] = {}
        for name, state in nets.items():
            spec = _spec(specs, name, seed)
            if spec.base is None:
                out[seed][name] = scratch_of(seed, name)
            else:
                base = spec.base.name
                out[seed][name] = matched_displacement(start_of(seed, base), state, nets[base], direction_seed(spec))
    return out


def untrained_world(profile: Profile, states: States, inits: States | None = None) -> States:
    """Scratch nets at their init; fine-tuned nets B|A(s) at A(s)'s init plus a random displacement with the
    real fine-tune's per-tensor norm (module docstring). ``inits``: :func:`init_states` of ``states``,
    when already computed."""
    inits = init_states(profile, states) if inits is None else inits
    return _world(profile, states, lambda s, n: inits[s][n], lambda s, base: inits[s][base])


def displaced_world(profile: Profile, states: States) -> States:
    """Scratch nets as trained; fine-tuned nets B|A(s) at the trained A(s) plus a random displacement with the
    real fine-tune's per-tensor norm (module docstring)."""
    return _world(profile, states, lambda s, n: states[s][n], lambda s, base: states[s][base])


def null_claim_tables(profile: Profile, ctx: DataContext, states: States, dist: dict,
                      inits: States | None = None) -> dict:
    """The claims' distance and activation inputs computed in the null worlds, under the names and in the
    formats of :func:`kneelib.study.analyses.claim_tables`.

    From the untrained world: ``scratch_pairs``, ``null_ratio``, ``aligned`` (the alignment control on
    two untrained nets: the aligned null), ``overlap`` (activation-map correlations, C7), ``cka``. From the
    displaced world: ``finetune``, ``headline`` (``{"by_seed": ...}``), ``tissue``. No ``per_scan`` or
    ``policy``: Dice claims have no null world.

    Args:
        profile: the study's profile (its tissues, depth, activation and CKA slices).
        ctx: its data (the test slices activations and CKA are computed on).
        states: seed -> net name -> trained state_dict.
        dist: :func:`kneelib.study.analyses.distances` of ``states`` (its ``distances_null``, the He null
            the null ratios divide by).
        inits: :func:`init_states` of ``states``, when already computed.
    """
    untrained = untrained_world(profile, states, inits)
    displaced = distance_tables.distance_tables(displaced_world(profile, states), tissues=profile.tissues)
    at_init = {**distance_tables.distance_tables(untrained, tissues=profile.tissues),
               "distances_null": dist["distances_null"]}
    control = analyses.controls(profile, ctx, untrained, at_init)
    return {"scratch_pairs": at_init["scratch_pairs"], "null_ratio": control.null_ratio, "aligned": control.aligned,
            "overlap": analyses.activations(profile, ctx, untrained).overlap, "cka": control.cka,
            "finetune": displaced["finetune"], "headline": {"by_seed": displaced["headline"]},
            "tissue": displaced["tissue"]}
