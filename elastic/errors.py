"""Errors a user can cause and fix. The CLI prints these without a traceback; the
app shows them as messages. Anything else is a bug and keeps its traceback."""


class ElasticError(Exception):
    """Base class for problems with the user's input, data or files."""


class UnknownName(ElasticError, KeyError):
    """An architecture, dataset, method or grid name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFound(ElasticError):
    """A dataset that is neither on disk nor downloadable."""


class BadCheckpoint(ElasticError):
    """A checkpoint that is missing, corrupt, untrusted or for another model."""


class BadResults(ElasticError):
    """A results file that does not follow the schema."""


class BadBudget(ElasticError):
    """A budget or target that no configuration can meet, or that is not a number."""


class Diverged(ElasticError):
    """A training whose loss became infinite or not a number."""
