"""Build a tiny demo model (random weights, tokenizer trained on the bundled corpus) and register it.

Lets the app be tried on a machine with no downloads: ``manage.py create_demo_model``.
With ``--with-dataset`` it also writes the bundled corpus as a JSONL dataset and validates it.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from trainer.demo import build_tiny_model, demo_texts, write_jsonl
from webapp.basemodels.models import BaseModel
from webapp.basemodels.registry import register_model
from webapp.datasets.models import Dataset


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--owner", help="Username owning the model (default: first superuser).")
        parser.add_argument("--name", default="demo-tiny-llama", help="Registered name.")
        parser.add_argument(
            "--out", help="Where to write the model (default: MEDIA_ROOT/models/<name>)."
        )
        parser.add_argument("--with-dataset", action="store_true", help="Also add a demo corpus.")
        parser.add_argument("--documents", type=int, default=2000, help="Documents in it.")

    def handle(self, *args, **opts) -> None:
        owner = self._owner(opts["owner"])
        out = Path(opts["out"] or Path(settings.MEDIA_ROOT) / "models" / opts["name"]).resolve()
        # Running it again keeps the model (and the runs that use it) instead of rebuilding.
        model = BaseModel.objects.filter(owner=owner, path=str(out)).first()
        if model is None:
            build_tiny_model(out)
            model = register_model(owner, opts["name"], str(out))
        self.stdout.write(
            f"model #{model.pk} {model.name}: {model.architecture}, {model.num_params} parameters, "
            f"at {model.path}"
        )
        if opts["with_dataset"]:
            dataset = self._demo_dataset(owner, opts["documents"])
            self.stdout.write(f"dataset #{dataset.pk} {dataset.name}: {dataset.state}")

    def _owner(self, username: str | None):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"--owner: no user {username!r}")
            return user
        user = users.filter(is_superuser=True).order_by("pk").first()
        if user is None:
            raise CommandError("no superuser yet: create one or pass --owner")
        return user

    def _demo_dataset(self, owner, documents: int) -> Dataset:
        from worker.datasets import validate_dataset

        dataset = Dataset.objects.create(
            owner=owner, name="demo-docstrings", filename="demo.jsonl", size_bytes=0, sha256=""
        )
        dataset.storage_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(dataset.partial_path, itertools.islice(demo_texts(documents), documents))
        data = dataset.partial_path.read_bytes()
        Dataset.objects.filter(pk=dataset.pk).update(
            size_bytes=len(data),
            received_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            state=Dataset.State.VALIDATING,
        )
        validate_dataset(dataset.pk)
        dataset.refresh_from_db()
        return dataset
