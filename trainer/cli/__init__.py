"""``engine models``, ``engine train`` and ``engine predict``: the model's commands.

The package's modules: ``app`` (the typer app), ``train`` (``engine train``), ``predict``
(``engine predict``) and ``models`` (``engine convert-massformer``, ``engine models``);
importing the package adds every command to :data:`app`, in that order.
"""

# the commands are added to app as they are imported: in the old module's order
# isort: off
from trainer.cli.app import app
from trainer.cli.train import _print_val, train_cmd
from trainer.cli.predict import parse_predict_size, predict_cmd
from trainer.cli.models import convert_massformer_cmd, models_cmd
# isort: on

__all__ = [
    "_print_val",
    "app",
    "convert_massformer_cmd",
    "models_cmd",
    "parse_predict_size",
    "predict_cmd",
    "train_cmd",
]
