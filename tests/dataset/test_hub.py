"""Publishing, tested at the HfApi edge: the Hub's HTTP API is replaced by a fake that checks every call against
the real method's signature; the folder and its card are real."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import CommitInfo, DatasetCard, HfApi
from huggingface_hub.hf_api import GitRefInfo, GitRefs
from huggingface_hub.utils import filter_repo_objects

from keypoint_instruct.cli import main
from keypoint_instruct.dataset import hub
from keypoint_instruct.errors import DatasetBuildError, UsageError

SECRET = "hf_test_secret_token_value"


class FakeHub:
    """Records HfApi calls; holds tags like a repo would."""

    def __init__(self, tags=(), public=False):
        self.calls = []
        self.tags = list(tags)
        self.public = public  # the repo exists already and is public
        self.uploaded_readme = None
        self.files = {".gitattributes"}  # the repo's files after the last commit

    def install(self, monkeypatch):
        for name in ("create_repo", "repo_info", "list_repo_refs", "upload_folder", "create_tag"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        signature = inspect.signature(getattr(HfApi, name))
        fake = self

        def method(api, *args, **kwargs):
            bound = signature.bind(api, *args, **kwargs)  # a wrong argument fails here, as it would for real
            arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
            fake.calls.append((name, arguments, api.token))
            return getattr(fake, name)(**arguments)

        return method

    def create_repo(self, repo_id, **_):
        return f"https://huggingface.co/datasets/{repo_id}"

    def repo_info(self, repo_id, **_):
        return SimpleNamespace(id=repo_id, private=not self.public)

    def list_repo_refs(self, repo_id, **_):
        tags = [GitRefInfo(name=t, ref=f"refs/tags/{t}", target_commit="0" * 40) for t in self.tags]
        return GitRefs(branches=[], converts=[], tags=tags)

    def upload_folder(self, repo_id, folder_path, delete_patterns=None, **_):
        self.uploaded_readme = Path(folder_path, "README.md").read_text()
        # what the Hub does in one commit: remote files matching delete_patterns go (never .gitattributes), the
        # folder's files are added (huggingface_hub's own pattern matching)
        deleted = (
            set(filter_repo_objects(sorted(self.files), allow_patterns=delete_patterns)) if delete_patterns else set()
        )
        self.files = (self.files - deleted) | {".gitattributes"} | set(hub.folder_files(Path(folder_path)))
        return CommitInfo(
            commit_url=f"https://huggingface.co/datasets/{repo_id}/commit/{'a' * 40}",
            commit_message="",
            commit_description="",
            oid="a" * 40,
        )

    def create_tag(self, repo_id, tag, **_):
        self.tags.append(tag)


@pytest.fixture
def folder(dataset_dir, tmp_path):
    copy = tmp_path / "dataset"
    shutil.copytree(dataset_dir, copy)
    return copy


def test_push_uploads_in_one_commit_then_tags(folder, monkeypatch, capsys):
    fake = FakeHub()
    fake.install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    before = (folder / "README.md").read_text()
    code = main(["push", str(folder), "--repo-id", "org/keypoint_instruct", "--version", "1.0.0", "--private"])
    out, err = capsys.readouterr()
    assert code == 0, err
    names = [name for name, _, _ in fake.calls]
    assert names == ["create_repo", "repo_info", "list_repo_refs", "upload_folder", "create_tag"]
    create_repo, upload, tag = fake.calls[0][1], fake.calls[3][1], fake.calls[4][1]
    assert create_repo["repo_type"] == "dataset" and create_repo["private"] is True and create_repo["exist_ok"]
    assert upload["repo_type"] == "dataset" and str(upload["folder_path"]) == str(folder)
    assert tag["tag"] == "v1.0.0" and tag["revision"] == "a" * 40
    assert all(token == SECRET for _, _, token in fake.calls)
    assert SECRET not in out + err
    card = DatasetCard(fake.uploaded_readme)
    assert {c["config_name"] for c in card.data.to_dict()["configs"]} == {
        "conversation",
        "detailed_description",
        "complex_reasoning",
        "all",
    }
    assert 'load_dataset("org/keypoint_instruct", "complex_reasoning"' in card.text
    local_ref = re.search(r'load_dataset\("([^"]+)"', before).group(1)  # the folder the build wrote
    assert local_ref != "org/keypoint_instruct" and local_ref not in card.text
    assert "--dataset_name org/keypoint_instruct " in card.text
    # the YAML front matter goes up byte for byte, and the folder's own card is left as it was
    local = (folder / "README.md").read_text()
    assert fake.uploaded_readme.split("\n---\n")[0] == local.split("\n---\n")[0]
    assert local == before and "org/keypoint_instruct" not in local


def test_a_public_repo_is_not_pushed_as_private(folder, monkeypatch, capsys):
    fake = FakeHub(public=True)
    fake.install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0", "--private"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "public" in err
    assert "upload_folder" not in [name for name, _, _ in fake.calls]
    # without --private, a public repo is fine
    assert main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0"]) == 0


def test_a_version_other_than_the_built_one_is_refused(folder, capsys):
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.1.0", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "built as version 1.0.0" in err


def test_a_failed_upload_leaves_the_folder_card_unchanged(folder, monkeypatch, capsys):
    FakeHub().install(monkeypatch)
    before = (folder / "README.md").read_text()

    def broken(api, **kwargs):
        assert 'load_dataset("org/kpi"' in Path(kwargs["folder_path"], "README.md").read_text()
        raise OSError("connection reset")

    monkeypatch.setattr(HfApi, "upload_folder", broken)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0"]) == 2
    assert "connection reset" in capsys.readouterr().err
    assert (folder / "README.md").read_text() == before


def test_a_new_version_replaces_the_data_files_of_the_previous_one(coco_root, offline_cache, monkeypatch, tmp_path):
    """v1.1.0 has fewer shards than v1.0.0: the repo at v1.1.0 must not keep v1.0.0's extra shards, which the
    `<config>/train-*` globs of the card would read as data of v1.1.0."""
    from keypoint_instruct.dataset.folder import build_folder

    common = {"coco_root": coco_root, "coco_split": "train2017", "cache_path": offline_cache}
    build_folder(**common, out=tmp_path / "v1", version="1.0.0", max_shard_bytes=20_000)
    build_folder(**common, out=tmp_path / "v2", version="1.1.0")
    old, new = set(hub.folder_files(tmp_path / "v1")), set(hub.folder_files(tmp_path / "v2"))
    assert old - new, "the first version should have shards the second lacks"
    fake = FakeHub()
    fake.install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    for folder, version in ((tmp_path / "v1", "1.0.0"), (tmp_path / "v2", "1.1.0")):
        assert main(["push", str(folder), "--repo-id", "org/kpi", "--version", version]) == 0
    assert fake.files == new | {".gitattributes"}
    assert fake.tags == ["v1.0.0", "v1.1.0"]


def test_card_for_repo_only_touches_the_dataset_reference():
    text = '---\nconfigs:\n- config_name: all\n  path: "out/ds"\n---\nload_dataset("out/ds", "all")\n'
    text += "--dataset_name out/ds --coco_root x\nout/ds stays in prose\n"
    card = hub.card_for_repo(text, "org/kpi")
    assert card.startswith('---\nconfigs:\n- config_name: all\n  path: "out/ds"\n---\n')
    assert 'load_dataset("org/kpi", "all")' in card and "--dataset_name org/kpi --coco_root" in card
    assert "out/ds stays in prose" in card
    assert hub.card_for_repo(card, "org/kpi") == card


def test_existing_tag_is_refused_and_nothing_uploaded(folder, monkeypatch, capsys):
    fake = FakeHub(tags=["v1.0.0"])
    fake.install(monkeypatch)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "v1.0.0" in err
    assert "upload_folder" not in [name for name, _, _ in fake.calls]


def test_hub_http_errors_become_one_line(folder, monkeypatch, capsys):
    fake = FakeHub()
    fake.install(monkeypatch)

    def broken(*args, **kwargs):
        raise OSError("connection refused\nsecond line")

    monkeypatch.setattr(HfApi, "upload_folder", broken)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "connection refused" in err and "Traceback" not in err


def test_dry_run_lists_files_without_token_or_network(folder, monkeypatch, capsys):
    fake = FakeHub()
    fake.install(monkeypatch)
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and fake.calls == []
    for path in hub.folder_files(folder):
        assert path in out
    assert "README.md" in out and "all/train-00000-of-00001.parquet" in out and "v1.0.0" in out


def test_no_token_is_a_one_line_error(folder, monkeypatch, capsys):
    FakeHub().install(monkeypatch)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    code = main(["push", str(folder), "--repo-id", "org/kpi", "--version", "1.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and "HF_TOKEN" in err and err.count("\n") == 1


def test_a_card_without_configs_is_never_pushed(folder, monkeypatch):
    FakeHub().install(monkeypatch)
    (folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# no configs\n")
    with pytest.raises(DatasetBuildError, match="configs"):
        hub.push(folder, "org/kpi", "1.0.0", dry_run=True)


@pytest.mark.parametrize(("version", "repo_id"), [("1.0", "org/kpi"), ("v1.0.0", "org/kpi"), ("1.0.0", "kpi")])
def test_bad_version_or_repo_id(folder, version, repo_id):
    with pytest.raises(UsageError):
        hub.push(folder, repo_id, version, dry_run=True)


def test_export_llava_layout(dataset_dir, tmp_path, capsys):
    out = tmp_path / "llava.json"
    assert main(["export-llava", str(dataset_dir), "--config", "conversation", "--out", str(out)]) == 0
    records = json.loads(out.read_text())
    assert records and f"{len(records):,} samples" in capsys.readouterr().out
    for record in records:
        assert set(record) == {"id", "image", "conversations"}
        assert record["image"].endswith(".jpg") and "/" not in record["image"]
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert turns[0]["value"].startswith("<image>\n")
        assert all("<image>" not in t["value"] for t in turns[1:])


def test_export_unknown_config_is_one_line(dataset_dir, tmp_path, capsys):
    code = main(["export-llava", str(dataset_dir), "--config", "nope", "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "nope" in err and err.count("\n") == 1
