"""Placeholder until the method lands (being written now)."""
from elastic.errors import ElasticError


def add_options(parser) -> None:
    pass


def run_cli(args) -> None:
    raise ElasticError("this method is not implemented yet")
