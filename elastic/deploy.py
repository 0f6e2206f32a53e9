"""Placeholder until deployment lands (being written now)."""
from elastic.errors import ElasticError


def add_bench_options(parser) -> None:
    pass


def add_export_options(parser) -> None:
    pass


def run_bench_cli(args) -> None:
    raise ElasticError("not implemented yet")


run_export_cli = run_bench_cli
