"""One local Spark session for the whole test run, and a fresh lake per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from cdp.config import Config, load_config
from cdp.lake import Lake
from cdp.lake.delta_rs import DeltaRsEngine
from cdp.lake.delta_spark import DeltaSparkEngine
from cdp.spark import capabilities, get_spark


@pytest.fixture(scope="session")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    base = load_config("local", lake_root=str(tmp_path_factory.mktemp("lake")))
    spark = base.spark.model_copy(
        update={
            "master": "local[2]",
            "conf": {
                **base.spark.conf,
                # Tiny test data: few shuffle partitions keep each query well under a second.
                "spark.sql.shuffle.partitions": "2",
                "spark.default.parallelism": "2",
                # No adaptive re-planning on data this small.
                "spark.sql.adaptive.enabled": "false",
                "spark.driver.memory": "2g",
            },
        }
    )
    logging = base.logging.model_copy(update={"dir": str(tmp_path_factory.mktemp("logs"))})
    return base.model_copy(update={"spark": spark, "logging": logging})


@pytest.fixture(scope="session")
def spark(cfg: Config) -> Iterator[SparkSession]:
    session = get_spark(cfg)
    yield session
    session.stop()


ENGINES = ["delta-rs", "delta-spark"]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, spark: SparkSession):
    """Each lake contract test runs against every engine this session can load."""
    if request.param == "delta-spark":
        if not capabilities(spark).delta_extension:
            pytest.skip(
                "delta-spark engine: io.delta.sql.DeltaSparkSessionExtension is not on the classpath "
                "(its jar comes from Maven Central, unreachable here)"
            )
        return DeltaSparkEngine(spark)
    return DeltaRsEngine(spark)


@pytest.fixture
def lake_root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")


@pytest.fixture
def lake(spark: SparkSession, engine, lake_root: str) -> Lake:
    return Lake(spark, lake_root, engine=engine, job="test", run_id="run-1")


@pytest.fixture(scope="session")
def resolved_lake(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of 1 500 generated persons (seed 11), cleansed and resolved: shared by the identity and tag tests."""
    from cdp.cleansing.job import main as cleanse_main
    from cdp.generate.job import main as generate_main
    from cdp.identity.job import main as identity_main

    root = tmp_path_factory.mktemp("resolved")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert generate_main(["--lake", str(root), "--persons", "1500", "--seed", "11"]) == 0
        assert cleanse_main(["--lake", str(root), "--run-id", "c1"]) == 0
        assert identity_main(["--lake", str(root), "--run-id", "i1"]) == 0
    return root
