"""The release WorkflowTemplate, run here step by step as Argo runs it in the staging cluster.

Every step of workflows/train-evaluate-register-deploy.yaml runs as a subprocess with the template's own command and
args, `{{...}}` filled as Argo fills them, in an environment built as the pod's is:

- environment: the trainer image's ENV (images/trainer/Dockerfile), then the step's `envFrom` (the ConfigMap from
  workflows/pipeline-config.yaml and the Secrets it names, with values made up here, keys as docs/deployment.md names
  them), then its `env`, and KUBERNETES_SERVICE_HOST/PORT as the kubelet sets them. Nothing else of this process's
  environment reaches a step but PATH (the `mlops` on it is this checkout's).
- services: the ConfigMap's two cluster addresses are replaced by local ones: MLFLOW_TRACKING_URI by a real
  `mlflow server --app-name basic-auth` (SQLite backend, `--serve-artifacts --artifacts-destination s3://mlflow` on the
  S3 test server, as staging runs it), AWS_ENDPOINT_URL by that S3 server (MinIO's API); GitHub is a bare git remote,
  the Kubernetes API a local one answering for the ArgoCD Application (test_gitops_wait.py), and "ArgoCD" here is
  the test: it serves what main says staging runs, from what publish uploaded, with the real Triton and `mlops serve`.
- paths: each step is its own pod: an empty folder standing for its root filesystem, where /work/... (the image's
  WORKDIR and MLOPS_HOME=/work/.mlops, HOME=/work, the artifact paths, the workingDir) is <pod>/work/...; an output
  artifact is copied from the producing pod's path to the consuming pod's, a git artifact is a fresh clone.
- outputs: a task's `outputs.result` is its whole stdout less one trailing newline (Argo v4.0.4,
  workflow/executor/executor.go CaptureScriptResult), and only a successful task has one.

- user: as the template's securityContext says, uid/gid 1000 with fsGroup 1000 (support/pod_user.py: an interpreter
  that user can run, with this checkout's packages). A trainer pod's root is images/trainer/Dockerfile replayed
  (support/dockerfiles.py: its accounts and the folders it makes, with their owners); what Argo's executor writes
  (artifacts, clones) belongs to the pod's user, and a folder the runtime makes for a mount is root's.

Declared departures: the corpus is the small fixture package (`data --source`, `train --batch-size 8`) and its natural
questions (MLOPS_NATURAL_QUESTIONS/_DEV); the smoke test's URL is the local API; `gitops wait` gets
`--service-account` (the pod's /var/run/secrets/kubernetes.io/serviceaccount, made here); the pods' git trusts the
bare remote that stands for GitHub (`safe.directory` in GIT_CONFIG_GLOBAL: root owns it). Where this machine cannot
switch users (not root, or no interpreter uid 1000 can run), the pods run as this process's user and a warning says
so.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from mlops.core.settings import Settings
from mlops.lifecycle import registry
from mlops.serving.feedback import FeedbackStore
from mlops.triton.server import TritonServer
from support import dockerfiles
from support.kubernetes import FakeKubernetesApi, application
from support.lifecycle import pass_gate
from support.package import symbols_by_split
from support.pod_user import PodUser, can_traverse, share_remote
from support.services import MLOPS, ROOT, ApiProcess, git, gitops_remote, mlflow_server, push_commit, s3_server
from support.workflows import DOCS, TEMPLATE, dag_order, templates

EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
DOCKERFILE = ROOT / "images" / "trainer" / "Dockerfile"
TRAINER_IMAGE = re.compile(r"ghcr\.io/transformers-qa/trainer:(.+)")
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def image_environment(dockerfile: Path = DOCKERFILE, build_args: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The image's ENV (build ARGs substituted) and its last WORKDIR."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.+)$", text, re.MULTILINE):
        for pair in shlex.split(line):
            key, _, value = pair.partition("=")
            env[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: (build_args or {}).get(m.group(1), ""), value)
    return env, re.findall(r"^WORKDIR\s+(\S+)", text, re.MULTILINE)[-1]


def config_map(name: str) -> dict[str, str]:
    return next(d for d in DOCS if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)["data"]


class Pod:
    """One step's filesystem: absolute paths of the container live under ``root``."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, absolute: str) -> Path:
        return self.root / Path(absolute).relative_to("/")


class Argo:
    """Runs the template's tasks as Argo would (module docstring) and records each task's result."""

    def __init__(self, tmp: Path, parameters: dict[str, str], cluster: dict[str, str], secrets: dict[str, dict[str, str]],
                 remote: Path, extra_env: dict[str, str], user: PodUser | None, kube: FakeKubernetesApi | None = None):
        self.tmp, self.parameters, self.cluster, self.secrets, self.remote = tmp, parameters, cluster, secrets, remote
        self.extra_env, self.user, self.kube = dict(extra_env), user, kube
        if user:
            can_traverse(tmp)  # the pods below it are the pod user's
            self.extra_env.update(share_remote(remote))
        self.image_env, self.workdir = image_environment(build_args={"GIT_SHA": "0" * 40})
        self.results: dict[str, str] = {}
        self.outputs: dict[tuple[str, str], Path] = {}
        self.pods: dict[str, Pod] = {}
        self.done: dict[str, subprocess.CompletedProcess] = {}

    def fill(self, text: str, inputs: dict[str, str]) -> str:
        def value(match: re.Match) -> str:
            scope, _, name = match.group(1).rpartition(".")
            if scope == "workflow.parameters":
                return self.parameters[name]
            if scope == "inputs.parameters":
                return inputs[name]
            if scope == "workflow" and name == "name":
                return "train-evaluate-register-deploy-local"
            if scope == "workflow" and name == "uid":
                return "3f1c8a52-7d0e-4b8e-9a51-0c2d5e6f7a81"
            task = re.fullmatch(r"tasks\.([\w-]+)\.outputs", scope)
            assert task and name == "result", f"no stand-in for {{{{{match.group(1)}}}}}"
            return self.results[task.group(1)]
        return EXPRESSION.sub(value, text)

    def environment(self, pod: Pod, container: dict, inputs: dict[str, str], trainer: bool) -> dict[str, str]:
        env = {"PATH": f"{self.user.bin if self.user else Path(MLOPS).parent}{os.pathsep}{os.environ['PATH']}"}
        if trainer:
            env["HOME"] = str(pod.path("/work"))  # the trainer user's home (useradd --home-dir /work)
            env.update({k: str(pod.path(v)) if v.startswith("/") else v for k, v in self.image_env.items()})
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update({k: self.cluster.get(k, v) for k, v in config_map(source["configMapRef"]["name"]).items()})
            else:
                name = source["secretRef"]["name"]
                assert name in self.secrets, f"the step reads Secret {name}, which this test (and docs/deployment.md) does not know"
                env.update(self.secrets[name])
        for variable in container.get("env", []):
            if "valueFrom" in variable:
                ref = variable["valueFrom"]["secretKeyRef"]
                assert ref["name"] in self.secrets, f"the step reads Secret {ref['name']}, which this test (and docs/deployment.md) does not know"
                env[variable["name"]] = self.secrets[ref["name"]][ref["key"]]
            else:
                env[variable["name"]] = self.fill(variable["value"], inputs)
        return {**env, **self.extra_env}

    def pod(self, name: str) -> Pod:
        return Pod(self.tmp / "pods" / name)

    def run(self, task: dict, extra_args: list[str] = (), replace: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        template = templates()[task["template"]]
        inputs = {p["name"]: self.fill(p["value"], {}) for p in task.get("arguments", {}).get("parameters", [])}
        pod = self.pods[task["name"]] = self.pod(task["name"])
        shutil.rmtree(pod.root, ignore_errors=True)
        container = template.get("container") or template["script"]
        image = self.fill(container["image"], inputs)
        trainer = "script" not in template
        if trainer and self.user:  # the image's file system: the folders it makes, with their owners
            dockerfiles.replay(dockerfiles.load(DOCKERFILE), pod.root)
        pod.path(self.workdir).mkdir(parents=True, exist_ok=True)
        if self.kube:  # the service account's token, automounted in every pod, readable by its fsGroup
            for file in self.kube.service_account(pod.path(SERVICE_ACCOUNT)).iterdir():
                file.chmod(0o644)
        sources = {a["name"]: a["from"] for a in task.get("arguments", {}).get("artifacts", [])}
        for artifact in template.get("inputs", {}).get("artifacts", []):
            target = pod.path(artifact["path"])
            if "git" in artifact:  # what Argo's executor clones: main, one branch, before the step starts
                assert artifact["git"]["branch"] == "main" and artifact["git"]["singleBranch"] is True
                subprocess.run(["git", "clone", "--quiet", "--branch", "main", "--single-branch", str(self.remote), str(target)], check=True)
            else:
                producer, name = re.fullmatch(r"\{\{tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\}\}", sources[artifact["name"]]).groups()
                shutil.copytree(self.outputs[(producer, name)], target)
            if self.user:
                self.user.own(target)
        env = self.environment(pod, container, inputs, trainer)
        if not trainer:  # Argo writes the source to a file and runs command + that file
            script = pod.path("/argo/staging/script")
            script.parent.mkdir(parents=True)
            script.write_text(self.fill(template["script"]["source"], inputs))
            python = str(self.user.python) if self.user else sys.executable
            argv = [python if word == "python" else word for word in container["command"]] + [str(script)]
        else:
            assert container["command"] == ["mlops"] and TRAINER_IMAGE.fullmatch(image), image
            mlops = str(self.user.mlops) if self.user else MLOPS
            argv = [mlops, *[self.fill(str(a), inputs) for a in container["args"]], *extra_args]
            argv = [(replace or {}).get(a, a) for a in argv]
        cwd = pod.path(container.get("workingDir", self.workdir))
        cwd.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                              **(self.user.run_kwargs() if self.user else {}))
        self.done[task["name"]] = done
        if done.returncode == 0:
            out = done.stdout
            self.results[task["name"]] = out[:-1] if out.endswith("\n") else out
            for artifact in template.get("outputs", {}).get("artifacts", []):
                self.outputs[(task["name"], artifact["name"])] = pod.path(artifact["path"])
        return done


# The first step: which images this run uses.

IMAGES = '# staging runs\nimages:\n  triton:\n    tag: "{triton}"   # the release tag\n  api:\n    tag: {api}\n'


def image_step(tmp_path: Path, given: str, images: str, user: PodUser | None) -> subprocess.CompletedProcess:
    seed = tmp_path / "seed"
    (seed / "gitops/envs/staging/values").mkdir(parents=True)
    (seed / "gitops/envs/staging/values/images.yaml").write_text(images)
    git(tmp_path, "init", "--quiet", "-b", "main", str(seed))
    git(seed, "add", ".")
    git(seed, "-c", "user.email=a@b", "-c", "user.name=seed", "commit", "--quiet", "-m", "seed")
    argo = Argo(tmp_path, {"image-tag": given}, {}, {}, seed, {}, user)
    return argo.run(dag_order()[0])


@pytest.mark.parametrize(("given", "triton", "api", "printed"), [
    ("v2.0.0", "v1.4.0", "v1.4.0", "v2.0.0"),      # a release: its own tag
    ("", "v1.4.0", "v1.4.0", "v1.4.0"),            # retraining: what staging runs
    ("", "v1.4.0", "'v1.4.0'", "v1.4.0"),
    ("v2.0.0", "", '""', "v2.0.0"),                # the first release
])
def test_the_image_step_prints_the_tag_this_run_uses(tmp_path: Path, given: str, triton: str, api: str, printed: str, pod_user):
    done = image_step(tmp_path, given, IMAGES.format(triton=triton, api=api), pod_user)
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed + "\n"


@pytest.mark.parametrize(("given", "triton", "api", "error"), [
    ("", "", '""', "staging runs no release yet (gitops/envs/staging/values/images.yaml names no image tag): cut a release first"),
    ("", "v1.4.0", "v1.3.0", "pins different tags (v1.3.0, v1.4.0); make them one release tag"),
    ("v1;rm -rf /", "v1.4.0", "v1.4.0", "image-tag 'v1;rm -rf /' is not an image tag"),
])
def test_the_image_step_fails_with_one_line(tmp_path: Path, given: str, triton: str, api: str, error: str, pod_user):
    done = image_step(tmp_path, given, IMAGES.format(triton=triton, api=api), pod_user)
    assert done.returncode != 0 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ") and error in line


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_the_image_step_reads_images_yaml_as_the_promotion_code_does(tmp_path: Path, env: str, pod_user):
    """Its line-based reading agrees with mlops.release.layout (PyYAML) on the repository's own files."""
    from mlops.release.layout import read_image_tag

    done = image_step(tmp_path, "", (ROOT / f"gitops/envs/{env}/values/images.yaml").read_text(), pod_user)
    expected = read_image_tag(ROOT, env)
    assert (done.stdout.strip(), done.returncode == 0) == (expected, bool(expected)), done.stderr


def test_the_pod_environment_comes_from_the_dockerfile():
    env, workdir = image_environment(build_args={"GIT_SHA": "abc"})
    assert env["MLOPS_HOME"] == "/work/.mlops" and env["GIT_SHA"] == "abc" and workdir == "/work"


# The whole release.

def served_staging(stack: ExitStack, s3, remote: Path, tmp: Path) -> str:
    """What ArgoCD and the chart do with main: fetch the version staging names from the model store (the Triton pod's
    init containers), serve it with Triton and the API in front. Returns the API's URL."""
    version = yaml.safe_load(git(remote, "show", "main:gitops/envs/staging/values/model.yaml"))["model"]["version"]
    repository = tmp / "staging-triton" / "models"
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]]:
        name, _, rest = key.partition("/")
        if rest == "config.pbtxt" or rest.startswith(f"{version}/"):
            target = repository / name / rest
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file("models", key, str(target))
    triton = stack.enter_context(TritonServer(repository, tmp / "staging-triton" / "logs"))
    triton.load_model("transformers-qa")
    api = ApiProcess(triton.http_url, tmp / "staging-api")
    stack.callback(api.kill)
    return api.url


def staging_feedback(folder: Path, package: Path, user: PodUser | None) -> str:
    """Staging's feedback database with a user's thumbs-up and a reviewed thumbs-down (mlops review), both on symbols
    of the train split, which the data step trains on."""
    train = symbols_by_split(package)["train"]
    folder.mkdir()
    url = f"sqlite:///{folder / 'feedback.db'}"
    store = FeedbackStore(url)
    store.add(question="carry on from where my job died", symbol=train[0], rating="up", model_version="1")
    down = store.add(question="which piece pads my batches", symbol=train[1], rating="down", model_version="1")
    store.add_review([down], reviewer="ana", decision="symbol", symbol="minilib.data.collators.PaddingCollator")
    store.close()
    if user:  # SQLite writes its journal beside the file: the pod's user owns the folder
        user.own(folder)
    return url


def test_the_release_workflow_runs_here_and_stops_at_a_failed_gate(tmp_path: Path, mini_package: Path, natural_file: Path,
                                                                    monkeypatch: pytest.MonkeyPatch, pod_user: PodUser | None):
    remote = gitops_remote(tmp_path, {"staging": ("", "")})  # nothing promoted yet: this is the first release
    parameters = {p["name"]: p["value"] for p in TEMPLATE["spec"]["arguments"]["parameters"]}
    parameters.update(release="v9.9.9", **{"image-tag": "v9.9.9"})
    tasks = dag_order()
    with ExitStack() as stack:
        s3 = stack.enter_context(s3_server("models", "mlflow"))
        server = stack.enter_context(mlflow_server(tmp_path / "mlflow", "s3://mlflow"))
        kube = FakeKubernetesApi(tmp_path / "kube")
        stack.callback(kube.stop)
        secrets = {"mlops-pipeline-s3": {"AWS_ACCESS_KEY_ID": "made-up-minio-user", "AWS_SECRET_ACCESS_KEY": "made-up-minio-password"},
                   "mlops-pipeline-mlflow": {"MLFLOW_TRACKING_USERNAME": server.username, "MLFLOW_TRACKING_PASSWORD": server.password},
                   "mlops-pipeline-feedback": {"url": staging_feedback(tmp_path / "feedback", mini_package, pod_user)}}
        cluster = {"MLFLOW_TRACKING_URI": server.url, "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"]}
        extra = {"MLOPS_NATURAL_QUESTIONS": str(natural_file), "MLOPS_NATURAL_DEV": str(natural_file), **kube.environment()}
        argo = Argo(tmp_path, parameters, cluster, secrets, remote, extra, pod_user, kube)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.username)  # this process's own look-ups
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.password)
        client = MlflowClient(server.url)
        settings = Settings(home=tmp_path / "checks", tracking_uri=server.url)
        aliases = {}
        for task in tasks:
            name, replace, extra_args = task["name"], {}, []
            if name == "data":
                extra_args = ["--source", str(mini_package)]
            elif name == "train":
                extra_args = ["--batch-size", "8"]
            elif name == "argocd":
                # Main moves on before ArgoCD looks (another commit lands), then ArgoCD syncs it and rolls staging.
                head = push_commit(remote, tmp_path / "other", "NOTES.md", "unrelated\n", "docs: unrelated")
                kube.answers = [application("OutOfSync", git(remote, "rev-parse", "main~2").strip(), "Healthy", "Running"),
                                application("Synced", head, "Healthy")]
                extra_args = ["--service-account", str(argo.pod(name).path(SERVICE_ACCOUNT))]
                api_url = served_staging(stack, s3, remote, tmp_path)
            elif name == "smoke":
                replace = {"http://transformers-qa-api.transformers-qa.svc.cluster.local": api_url}
            elif name == "champion":
                aliases["before champion"] = {a: registry.by_alias(client, "transformers-qa", a) for a in ("champion", "candidate")}
            done = argo.run(task, extra_args, replace)
            if name == "evaluate":
                # The untuned encoder is already perfect on the fixture's test split, so the real gate fails (exit 3, the
                # reason as the last line): Argo stops the DAG there, since every later task depends on `.Succeeded`.
                assert done.returncode == 3 and "quality gate failed" in done.stderr.strip().splitlines()[-1]
                assert_nothing_shipped(client, remote, s3)
                # To follow the rest of the chain, record what `mlops evaluate` records for a passing run.
                pass_gate(settings, argo.results["train"])
                argo.results["evaluate"] = ""
                continue
            assert done.returncode == 0, f"{name}: {done.stderr[-3000:]}"
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="models")["Contents"]}
        final = {a: registry.by_alias(client, "transformers-qa", a) for a in ("champion", "candidate", "staging")}
        results = dict(argo.results)

        # Retraining afterwards (the CronWorkflow, the event binding): no image tag, so the first step picks what
        # staging runs, and the promotion commit changes only the model.
        argo.parameters.update(release="scheduled", **{"image-tag": ""})
        assert argo.run(tasks[0]).returncode == 0 and argo.results["image-tag"] == "v9.9.9"
        retrained = client.create_model_version("transformers-qa", f"runs:/{argo.results['train']}/model", argo.results["train"],
                                                tags={"dataset_hash": argo.results["data"]})
        argo.results["register"] = str(retrained.version)
        promoted = argo.run(next(t for t in tasks if t["name"] == "promote"))
        assert promoted.returncode == 0, promoted.stderr[-2000:]
        assert argo.results["promote"] == git(remote, "rev-parse", "main").strip()

    if pod_user:  # the steps ran as the pod's user: what training wrote is its
        assert {p.stat().st_uid for p in argo.pods["train"].path("/work/.mlops").rglob("*")} == {pod_user.uid}
    # stdout is the result and nothing else, though MLflow printed "View run" when the training run ended
    assert "View run" in argo.done["train"].stderr and argo.done["train"].stdout == results["train"] + "\n"
    assert re.fullmatch(r"[0-9a-f]{16}", results["data"]) and re.fullmatch(r"[0-9a-f]{32}", results["train"])
    assert "feedback: 2 ratings, 2 training pairs, 0 off-topic examples (left out: none)" in argo.done["data"].stderr
    assert results["publish"] == "s3://models/transformers-qa/1"
    assert {"transformers-qa/config.pbtxt", "transformers-qa/1/model.py", "transformers-qa/1/embeddings.npy"} <= keys
    # The release commit: staging runs version 1 on the release's images, CI skipped; main moved on past it.
    release_commit = git(remote, "rev-parse", "main~2").strip()
    assert results["promote"] == release_commit
    assert results["argocd"] == git(remote, "rev-parse", "main~1").strip() != release_commit  # ArgoCD ran a later revision
    message = git(remote, "log", "-1", "--format=%B", release_commit)
    assert message.startswith("promote(staging): transformers-qa version 1 (was none)")
    assert "images: v9.9.9 (was none)" in message and "[skip ci]" in message
    assert "argo workflow train-evaluate-register-deploy-local, release v9.9.9" in message
    assert yaml.safe_load(git(remote, "show", f"{release_commit}:gitops/envs/staging/values/images.yaml"))["images"]["api"]["tag"] == "v9.9.9"
    # `champion` moved only after the staging smoke test; until then the version was `candidate`
    assert results["smoke"] == "" and "smoke test passed" in argo.done["smoke"].stderr
    assert aliases["before champion"]["champion"] is None and str(aliases["before champion"]["candidate"].version) == "1"
    assert str(final["champion"].version) == "1" and final["candidate"] is None and str(final["staging"].version) == "1"
    # the retraining's commit: only the model changed
    assert git(remote, "show", "--name-only", "--format=", "main").split() == ["gitops/envs/staging/values/model.yaml"]
    assert "images: v9.9.9 (was v9.9.9)" in git(remote, "log", "-1", "--format=%B", "main")


def assert_nothing_shipped(client: MlflowClient, remote: Path, s3) -> None:
    assert client.search_registered_models() == []
    assert "Contents" not in s3.list_objects_v2(Bucket="models")
    assert git(remote, "log", "--format=%s", "main").strip() == "seed"
