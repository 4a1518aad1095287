"""Customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend, fitted by maximum likelihood.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive a customer buys
as a Poisson process of rate lambda ~ Gamma(r, alpha), and after each repeat purchase drops out for good
with probability p ~ Beta(a, b). Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value
curves"; Colombo & Jiang 1999): a customer's order values are Gamma(p, nu) with nu ~ Gamma(q, v).

1. `summary`: per customer, in Spark, the sufficient statistics x (repeat purchase days), t_x, T and
   the mean repeat spend. Time runs in units of `unit_days` from the customer's first purchase date.
2. `fit_bgnbd` / `fit_gamma_gamma`: the statistics are grouped to their distinct values with a count
   (far fewer rows than customers), collected, and the weighted log-likelihood is maximised with scipy
   on log-parameters, after rescaling time (or money) to a mean of 1 so that the start point (all
   parameters 1) is sensible whatever the unit. The BG/NBD likelihood evaluates its special functions
   once per distinct x and its logarithms once per distinct t_x or T (`Levels`).
3. `predict`: column expressions (eq. 10 of the BG/NBD paper, P(alive), the Gamma-Gamma conditional
   mean); the Gaussian hypergeometric function of eq. 10 is computed with scipy once per distinct
   (x, T) and joined back (DataFrame API only, so it runs on Spark Connect too).

Why the likelihoods are written here instead of imported (checked on PyPI and in the package metadata):
`lifetimes`, the usual Python implementation, has had no release since 0.11.3 (July 2020) and its
README declares it in maintenance mode, pointing to PyMC-Marketing as its successor. Its requirements
are lower bounds only (numpy>=1.10, scipy>=1.0, pandas>=0.24, plus autograd and dill), so it is not
pinned to old versions, but nobody keeps it working: its data helpers still call `DataFrame.append`,
which pandas 2 removed. PyMC-Marketing does fit these models, a MAP point estimate included, but it
brings PyMC, PyTensor, ArviZ, xarray, matplotlib, seaborn and scikit-learn for what is here two
closed-form likelihoods of a few lines each. Both libraries also want one pandas row per customer.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from cdp.errors import DataQualityError
from cdp.spark import session_zone

logger = logging.getLogger(__name__)

UNIT_DAYS = 7.0  # the time unit of the models: a week
MIN_REPEAT_BUYERS = 10  # below this many customers with a repeat purchase a fit says nothing
LOG_BOUND = 20.0  # the fits search log-parameters in [-20, 20] (after rescaling); reaching it means no optimum
STATS = ("frequency", "recency", "age")
PREDICTED = ("expected_purchases", "p_alive", "expected_value", "clv")
SERIES = "_clv_series"  # a column `predict` adds while it computes, and drops


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD parameters: purchase rate ~ Gamma(r, alpha) (alpha in time units), drop-out ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma parameters: order value ~ Gamma(p, nu), nu ~ Gamma(q, v) (v in money)."""

    p: float
    q: float
    v: float


@dataclass(frozen=True)
class Levels:
    """An array as its distinct values and, for each element, the position of its value in them, so
    that a function of the array is computed once per distinct value: `spread(f(levels.values))`."""

    values: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, array: np.ndarray) -> Levels:
        values, index = np.unique(np.asarray(array, dtype=float), return_inverse=True)
        return cls(values, index)

    def spread(self, per_value: np.ndarray) -> np.ndarray:
        """Values computed for each of `values`, placed on the elements of the array."""
        return per_value[self.index]


def summary(purchases: DataFrame, *, as_of: dt.datetime, unit_days: float = UNIT_DAYS) -> DataFrame:
    """The BG/NBD and Gamma-Gamma sufficient statistics of each customer.

    Purchases are counted by calendar day in the session's time zone (the tags job sets the
    business's, `tags.timezone`): several orders on one day are one purchase of their summed
    amount. Orders at or after `as_of` are ignored (the caller normally filters them already),
    as are rows with a null `one_id` or `ts`; a null `amount` counts as 0.

    Args:
        purchases: one row per order: `one_id` (of any type: kept as it is), `ts` (timestamp),
            `amount` (numeric).
        as_of: the end of the observation period (naive means UTC).
        unit_days: the time unit of `recency` and `age`, in days.

    Returns:
        Output columns, one row per `one_id` with an order before `as_of`: `one_id` (its type),
        `frequency` (long, x: distinct purchase days - 1), `recency` (double, t_x: first to last
        purchase date, in units), `age` (double, T: first purchase date (its midnight) to `as_of`, in
        units, so always > recency), `monetary` (double, the spend on the days after the first one
        divided by `frequency`; null when `frequency` is 0).
    """
    if unit_days <= 0:
        raise ValueError(f"clv summary: unit_days must be positive, not {unit_days}")
    end = as_of if as_of.tzinfo else as_of.replace(tzinfo=dt.UTC)
    end_micros = (end - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    ts = F.col("ts").cast("timestamp")
    days = (
        purchases.where(F.col("one_id").isNotNull() & ts.isNotNull() & (F.unix_micros(ts) < F.lit(end_micros)))
        .groupBy("one_id", F.unix_date(F.to_date(ts)).alias("day"))  # the session's calendar day
        .agg(F.sum(F.coalesce(F.col("amount"), F.lit(0))).alias("spend"))
    )
    per_customer = days.groupBy("one_id").agg(
        (F.count("*") - 1).alias("frequency"),
        F.min("day").alias("first"),
        F.max("day").alias("last"),
        (F.sum("spend") - F.min_by("spend", "day")).alias("repeat_spend"),
    )
    end_day = _local_day(end, session_zone(purchases.sparkSession))
    return per_customer.select(
        "one_id",
        "frequency",
        ((F.col("last") - F.col("first")) / F.lit(unit_days)).alias("recency"),
        ((F.lit(end_day) - F.col("first")) / F.lit(unit_days)).alias("age"),
        F.when(F.col("frequency") > 0, F.col("repeat_spend").cast("double") / F.col("frequency")).alias("monetary"),
    )


def _local_day(instant: dt.datetime, zone: dt.tzinfo) -> float:
    """`instant` in days since 1970-01-01 on the clocks of `zone`: its date's number (as Spark's
    `unix_date(to_date(ts))` in a session of that zone) plus the part of that day's clock gone by."""
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
    return wall / dt.timedelta(days=1)


def fit_bgnbd(stats: DataFrame, *, penalizer: float = 0.0) -> BgNbd:
    """BG/NBD parameters by maximum likelihood on the output of `summary`.

    Args:
        stats: `frequency`, `recency`, `age` per customer (rows with a null are left out).
        penalizer: weight of an L2 penalty on the parameters (alpha measured with time rescaled to
            a mean age of 1), added to the mean negative log-likelihood as in `lifetimes`.

    Raises:
        DataQualityError: fewer than `MIN_REPEAT_BUYERS` customers with `frequency` > 0, statistics
            out of range, or a likelihood without a maximum.
    """
    groups = _distinct(stats, list(STATS), *[F.col(c).isNotNull() for c in STATS])
    x, tx, big_t, n = (groups[c].to_numpy(dtype=float) for c in (*STATS, "n"))
    _require(stats, "BG/NBD", "customers with frequency > 0", n[x > 0].sum())
    if (x < 0).any() or (x % 1 != 0).any() or (tx < 0).any() or (tx > big_t).any():
        raise DataQualityError(
            f"BG/NBD fit: {_name(stats)} has frequency that is not a whole number >= 0, or recency outside "
            "[0, age]; build it with cdp.tags.clv.summary"
        )
    scale = float(np.dot(n, big_t) / n.sum())
    (r, alpha, a, b), detail = _maximise(
        functools.partial(bgnbd_loglik, x=Levels.of(x), tx=Levels.of(tx / scale), big_t=Levels.of(big_t / scale)),
        n,
        ("r", "alpha", "a", "b"),
        f"BG/NBD fit on {_name(stats)}",
        penalizer,
    )
    model = BgNbd(r=r, alpha=alpha * scale, a=a, b=b)
    logger.info("BG/NBD fit: %s from %s", model, detail)
    return model


def fit_gamma_gamma(stats: DataFrame) -> GammaGamma:
    """Gamma-Gamma parameters by maximum likelihood on the customers with `frequency` > 0 and `monetary` > 0.

    `monetary` is rounded to cents to group customers; the fit is in the unit of `monetary`.

    Raises:
        DataQualityError: fewer than `MIN_REPEAT_BUYERS` such customers, a likelihood without a
            maximum, or a fitted q <= 1 (the mean spend of the population would be infinite).
    """
    money = F.round("monetary", 2).alias("monetary")
    groups = _distinct(stats, ["frequency", money], F.col("frequency") > 0, F.col("monetary") > 0)
    x, m, n = (groups[c].to_numpy(dtype=float) for c in ("frequency", "monetary", "n"))
    _require(stats, "Gamma-Gamma", "customers with frequency > 0 and monetary > 0", n.sum())
    scale = float(np.dot(n, m) / n.sum())
    (p, q, v), detail = _maximise(
        lambda params: gamma_gamma_loglik(params, x, m / scale),
        n,
        ("p", "q", "v"),
        f"Gamma-Gamma fit on {_name(stats)}",
    )
    model = GammaGamma(p=p, q=q, v=v * scale)
    _check_mean(model, f"Gamma-Gamma fit on {_name(stats)}")
    logger.info("Gamma-Gamma fit: %s from %s", model, detail)
    return model


def predict(stats: DataFrame, bg: BgNbd, gg: GammaGamma | None, *, horizon: float) -> DataFrame:
    """Every row of `stats` with the models' predictions.

    Args:
        stats: the output of `summary` (any further columns are kept).
        bg: the purchase model.
        gg: the spend model; None leaves `expected_value` and `clv` null.
        horizon: the prediction period, in the time unit of `stats`.

    Reads `stats` once now, to collect its distinct (frequency, age) (see `_with_series`): cache it
    first if it is costly to compute (the tag engine does), or it is computed again.

    Returns:
        Output columns: those of `stats`, then `expected_purchases` (double, E[purchases in the next
        `horizon` units | x, t_x, T], BG/NBD eq. 10), `p_alive` (double, P(still active | x, t_x, T);
        1 when frequency is 0), `expected_value` (double, the Gamma-Gamma conditional mean order
        value; the population mean p*v/(q-1) when frequency is 0 or monetary is null or <= 0), `clv`
        (double, expected_purchases * expected_value, undiscounted). The BG/NBD columns are null on a
        row with a null frequency, recency or age.
    """
    if horizon < 0:
        raise ValueError(f"clv predict: horizon must be >= 0, not {horizon}")
    if bg.a == 1.0:
        raise ValueError("clv predict: BG/NBD a = 1 is a removable singularity of eq. 10; perturb it")
    x, tx, big_t = (F.col(c).cast("double") for c in STATS)
    r, alpha, a, b = (F.lit(float(v)) for v in (bg.r, bg.alpha, bg.a, bg.b))
    # ((alpha+T)/(alpha+t_x))^(r+x) * a/(b+x-1) overflows a double for heavy buyers long gone:
    # summed in logs, exp() is then +inf and P(alive) = 1/(1+inf) = 0, as it should.
    log_odds_dead = (r + x) * (F.log(alpha + big_t) - F.log(alpha + tx)) + F.log(a) - F.log(b + x - 1)
    p_alive = F.when(x > 0, 1 / (1 + F.exp(log_odds_dead))).otherwise(F.lit(1.0))
    # Eq. 10 with Euler's transformation 2F1(r+x, b+x; c; z) = (1-z)^(a-1-r-x) 2F1(a+b-1-r, a-1; c; z),
    # c = a+b+x-1, which cancels ((alpha+T)/(alpha+T+t))^(r+x) = (1-z)^(r+x): the remaining series has
    # small parameters whatever x is, so neither factor overflows.
    t = F.lit(float(horizon))
    c = a + b + x - 1
    stats = _with_series(stats, bg, horizon)
    expected = c / (a - 1) * (1 - F.pow((alpha + big_t) / (alpha + big_t + t), a - 1) * F.col(SERIES)) * p_alive
    known = x.isNotNull() & tx.isNotNull() & big_t.isNotNull()
    if gg is None:
        value = F.lit(None).cast("double")
    else:
        _check_mean(gg, "clv predict")
        gp, gq, gv = (F.lit(float(v)) for v in (gg.p, gg.q, gg.v))
        m = F.col("monetary").cast("double")
        value = F.when((x > 0) & (m > 0), gp * (gv + x * m) / (gp * x + gq - 1)).otherwise(gp * gv / (gq - 1))
    kept = [col for col in stats.columns if col not in (*PREDICTED, SERIES)]
    return stats.select(
        *kept,
        F.when(known, expected).alias("expected_purchases"),
        F.when(known, p_alive).alias("p_alive"),
        value.alias("expected_value"),
    ).withColumn("clv", F.col("expected_purchases") * F.col("expected_value"))


def bgnbd_loglik(
    params: Sequence[float], x: np.ndarray | Levels, tx: np.ndarray | Levels, big_t: np.ndarray | Levels
) -> np.ndarray:
    """The log-likelihood of each (x, t_x, T) under BG/NBD (r, alpha, a, b), in the paper's closed form.

    The special functions depend on x alone and the logarithms on t_x or T alone, and each takes far
    fewer distinct values than there are rows: they are computed once per distinct value. A fit
    passes `Levels` built once; arrays are turned into them on each call.
    """
    r, alpha, a, b = params
    x, tx, big_t = (v if isinstance(v, Levels) else Levels.of(v) for v in (x, tx, big_t))
    xs = x.values
    repeat = xs > 0
    xr = np.where(repeat, xs, 1.0)  # keeps b + x - 1 > 0 where the term is masked anyway
    head = x.spread(gammaln(r + xs) - gammaln(r) + r * np.log(alpha))
    alive = x.spread(betaln(a, b + xs) - betaln(a, b))
    gone = x.spread(np.where(repeat, betaln(a + 1, b + xr - 1) - betaln(a, b), -np.inf))
    power = r + x.spread(xs)
    alive = alive - power * big_t.spread(np.log(alpha + big_t.values))
    gone = gone - power * tx.spread(np.log(alpha + tx.values))
    return head + np.logaddexp(alive, gone)


def gamma_gamma_loglik(params: Sequence[float], x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The log-likelihood of each mean spend m over x > 0 purchases under Gamma-Gamma (p, q, v)."""
    p, q, v = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + v)
    )


def _distinct(stats: DataFrame, keys: list[str | Column], *conditions: Column) -> pd.DataFrame:
    """The distinct values of `keys` among the rows meeting `conditions`, with their count `n`."""
    where = conditions[0]
    for cond in conditions[1:]:
        where = where & cond
    counted = stats.where(where).groupBy(*keys).agg(F.count("*").alias("n")).toArrow().to_pandas()
    # In a fixed order (the keys are distinct): the likelihood's sum, and so the fit, is then the
    # same on every run. Sorted here, not by Spark: the groups are few, and a Spark sort samples
    # and shuffles them first (two jobs more per fit).
    return counted.sort_values([c for c in counted.columns if c != "n"], ignore_index=True)


def _require(stats: DataFrame, model: str, who: str, count: float) -> None:
    if count < MIN_REPEAT_BUYERS:
        raise DataQualityError(
            f"{model} fit: {_name(stats)} has {int(count)} {who}; at least {MIN_REPEAT_BUYERS} are needed"
        )


def _maximise(
    loglik: Callable[[np.ndarray], np.ndarray],
    weights: np.ndarray,
    names: Sequence[str],
    what: str,
    penalizer: float = 0.0,
) -> tuple[list[float], str]:
    """The parameters (all > 0) maximising the weighted mean of `loglik`, searched on their logarithms,
    and a line describing the fit for the log."""
    total = weights.sum()

    def objective(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        value = -np.dot(weights, loglik(params)) / total + penalizer * np.sum(params**2)
        return float(value) if np.isfinite(value) else 1e300

    k = len(names)
    res = minimize(objective, np.zeros(k), method="L-BFGS-B", bounds=[(-LOG_BOUND, LOG_BOUND)] * k)
    fitted = dict(zip(names, np.exp(res.x).tolist(), strict=True))
    stuck = [name for name, lp in zip(names, res.x, strict=True) if abs(lp) > LOG_BOUND - 1e-3]
    if stuck or not np.isfinite(res.fun) or res.fun >= 1e300:
        raise DataQualityError(
            f"{what}: the likelihood has no maximum ({', '.join(stuck) or 'objective'} ran off; "
            f"last {fitted} on data rescaled to a mean of 1); the data do not identify the model"
        )
    if not res.success:
        logger.warning("%s: the optimiser stopped without converging (%s); using %s", what, res.message, fitted)
    detail = f"{int(total)} customers in {len(weights)} distinct rows, {res.nit} iterations"
    return list(fitted.values()), detail


def _check_mean(gg: GammaGamma, what: str) -> None:
    if gg.q <= 1:
        raise DataQualityError(f"{what}: Gamma-Gamma q = {gg.q:.4g} <= 1 gives an infinite mean spend")


def _with_series(stats: DataFrame, bg: BgNbd, horizon: float) -> DataFrame:
    """`stats` with column `SERIES`: 2F1(a+b-1-r, a-1; a+b+x-1; t/(alpha+T+t)) of eq. 10 for each row.

    The series depends on the frequency x and the age T alone, and `summary` measures T from a
    customer's first purchase day: there are at most (days of history) x (distinct frequencies)
    pairs, far fewer than customers (12 172 for the 1 812 728 buyers of 1M persons). They are
    collected, the series is computed once per pair with scipy, and the pairs are broadcast back.
    Computed row by row in a pandas UDF instead (as before), every row went to Python workers,
    whose start and initialisation alone took 1.9-4.3 s of task time in a run at 1M persons, and
    Spark shuffled the 1.8M predictions again (124 MiB) before the profile's join, as a Python
    evaluation does not report its input's partitioning by one_id. The same predictions, bit for bit.
    """
    base = stats.drop(SERIES)
    frequency, age = base["frequency"].cast("long"), base["age"].cast("double")
    pairs = base.where(frequency.isNotNull() & age.isNotNull()).select(frequency.alias("frequency"), age.alias("age"))
    levels = pairs.distinct().toArrow()
    x, big_t = (levels[c].to_numpy().astype(float) for c in ("frequency", "age"))
    r, alpha, a, b = bg.r, bg.alpha, bg.a, bg.b
    series = hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, horizon / (alpha + big_t + horizon))
    levels = levels.append_column(SERIES, pa.array(series, pa.float64()))
    table = stats.sparkSession.createDataFrame(levels, f"frequency long, age double, {SERIES} double")
    keys = (frequency == table["frequency"]) & (age == table["age"])
    return base.join(F.broadcast(table), keys, "left").select(*[base[c] for c in base.columns], table[SERIES])


def _name(df: DataFrame) -> str:
    """How an error names the statistics table: the columns it was given (a DataFrame has no name)."""
    return f"the statistics ({', '.join(df.columns)})"
