"""The computational stages of a run, composing `forecast` and `layout` (arrays in the middle, tables at the edges).

Each ``run_*`` function takes the loaded :class:`~schoolplan.dataset.Dataset`, the scenario values and what the
previous stages produced, and returns a dataclass; nothing here writes files.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.ccmpp import ProjectionResult
from forecast.fertility import TfrPolicy
from forecast.migration import (calculate_age_schedule, calculate_rural_urban_migration, offset_internal_movers,
                                split_net_migration)
from forecast.population import ProjectionInputs, build_housing_migration, build_projection_inputs, project_inputs
from forecast.stochastic import QUANTILES, StochasticProjection, project_draws
from schoolplan.dataset import Dataset

__all__ = ["PopulationStage", "run_population"]


@dataclass
class PopulationStage:
    inputs: ProjectionInputs
    deterministic: ProjectionResult      # population (T+1, U, 2, 101), with components
    draws: StochasticProjection           # school ages 0..17 by unit per draw, district by sex × age per draw
    years: np.ndarray                     # (T+1,) 1 Nov of each population index
    migration: dict[str, np.ndarray]      # component (T, U, 2, 101) net persons per step
    quantiles: tuple[float, ...] = QUANTILES


def build_migration(ds: Dataset, inputs: ProjectionInputs, sc: dict) -> dict[str, np.ndarray]:
    """Net migration components ``(T, U, 2, 101)``: external net migration, rural → urban moves, and the housing
    pipeline's occupants — a share from outside the district (in-migration), a share from rural units and the rest
    from other urban units (both moves within the district, conserving persons)."""
    m = sc["migration"]
    T = inputs.asfr.shape[0]
    U = len(inputs.unit_codes)
    urban = ds.units.set_index("unit_code").loc[inputs.unit_codes, "urban"].to_numpy(bool)
    township = ds.units.set_index("unit_code").loc[inputs.unit_codes, "township_code"].to_numpy()
    pop = inputs.population
    out: dict[str, np.ndarray] = {}
    # external: a district total per year split by a Rogers–Castro schedule, spread over units ∝ population
    total = np.full(T, float(m["net_external_per_year"]))
    unit_share = pop.sum(axis=(1, 2)) / pop.sum()
    out["external"] = split_net_migration(total[:, None] * unit_share[None, :], calculate_age_schedule(n_ages=pop.shape[-1]))
    rate = np.full(T, float(m["rural_urban_rate"]))
    out["rural_urban"] = calculate_rural_urban_migration(pop, urban, rate, group=township)
    if ds.housing_pipeline is not None and len(ds.housing_pipeline):
        hp = ds.housing_pipeline.assign(year=ds.housing_pipeline["year"] + int(m["housing_delay_years"]))
        movers = build_housing_migration(hp, inputs.unit_codes, inputs.fertility_years,
                                         persons_per_dwelling=m["housing_persons_per_dwelling"] * m["housing_occupancy"])
        ext, rural = m["housing_external_share"], m["housing_rural_share"]
        out["housing_external"] = movers * ext
        out["housing_from_rural"] = offset_internal_movers(movers * rural, pop, ~urban)
        out["housing_from_urban"] = offset_internal_movers(movers * max(0.0, 1 - ext - rural), pop, urban)
    else:
        out["housing_external"] = np.zeros((T, U, 2, pop.shape[-1]))
    return out


def run_population(ds: Dataset, sc: dict) -> PopulationStage:
    h, p = sc["horizon"], sc["population"]
    n_steps = int(h["end_year"] - h["base_year"])
    policies = []
    if p["tfr_policy_effect"] != 0:
        policies.append(TfrPolicy(p["tfr_policy_name"], float(p["tfr_policy_effect"]), int(p["tfr_policy_start_year"]),
                                  int(p["tfr_policy_ramp_years"])))
    inputs = build_projection_inputs(ds.base_population, ds.mortality, ds.asfr_schedule, ds.tfr, ds.srb,
                                     n_steps=n_steps, variant=p["tfr_variant"], policies=policies,
                                     unit_codes=list(ds.unit_codes))
    migration = build_migration(ds, inputs, sc)
    inputs = inputs.with_migration(sum(migration.values()))
    det = project_inputs(inputs, return_components=True)
    draws = project_draws(inputs.population, inputs.survival, inputs.asfr, inputs.srb, inputs.net_migration,
                          n_draws=int(p["draws"]), seed=int(p["seed"]), kept_ages=range(0, 19))
    return PopulationStage(inputs=inputs, deterministic=det, draws=draws, years=inputs.years, migration=migration)
