"""The pre-generation hook refuses bad answers; the post-generation hook finishes the project."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
from baking import (
    COMBINATIONS,
    CONSOLES,
    CORE_VARIABLES,
    PROVIDER_VARIABLES,
    PROVIDERS,
    QUESTIONS,
    TEMPLATE,
    bake,
    bake_cli,
    env_file,
    isolated_config,
    text_files,
)
from cookiecutter.exceptions import FailedHookException

# cookiecutter's own line after a failed hook; ours is the other `ERROR:` line.
COOKIECUTTER_STOP = "ERROR: Stopping generation"


def our_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("ERROR:") and not line.startswith(COOKIECUTTER_STOP)
    ]


# --- pre_gen_project.py ---------------------------------------------------------------------


def test_the_prompts_state_the_name_rule_before_it_is_checked(tmp_path: Path) -> None:
    """cookiecutter asks every question before a hook runs: the first prompt says the rule
    (and why it is checked only at the end), the error repeats it with an example."""
    config = isolated_config(tmp_path / "config")
    answers = "My App\n" + "\n" * 20  # a wrong name, then every default
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "--config-file", str(config)]
        + ["-o", str(tmp_path / "out")],
        input=answers,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    first_prompt = " ".join(result.stdout.split("[2/", 1)[0].split())  # rich wraps lines
    assert "lowercase letters and digits" in first_prompt and "e.g. my-login-app" in first_prompt
    assert "reported after the last one" in first_prompt
    assert our_errors(result.stderr) == [
        "ERROR: project_name 'My App' is invalid: use lowercase letters and digits, words "
        "joined by single '-', starting with a letter and not ending with '-' "
        "(e.g. project_name=my-login-app)."
    ]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


INVALID_NAMES = {
    "My App": "project_name 'My App' is invalid",
    "App": "project_name 'App' is invalid",
    "1app": "project_name '1app' is invalid",
    "app_": "project_name 'app_' is invalid",
    "my_app": "project_name 'my_app' is invalid",
    "-app": "project_name '-app' is invalid",
    "app-": "project_name 'app-' is invalid",
    "ap--p": "project_name 'ap--p' is invalid",
    "app.web": "project_name 'app.web' is invalid",
    'a"b': "project_name 'a\"b' is invalid",
    "class": "package_name 'class' is not a valid Python package name",
    "test": "package_name 'test' would shadow",
    "flask": "package_name 'flask' would shadow",
    "redis": "package_name 'redis' would shadow",
    "mock-providers": "package_name 'mock_providers' would shadow",
}


@pytest.mark.parametrize("name", list(INVALID_NAMES))
def test_invalid_project_name_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    result = bake_cli(out, f"project_name={name}")
    assert result.returncode != 0
    errors = our_errors(result.stderr)
    assert len(errors) == 1, result.stderr
    assert INVALID_NAMES[name] in errors[0]
    assert "choose another project_name" in errors[0] or "e.g. project_name=" in errors[0]
    assert not out.exists() or list(out.iterdir()) == [], "a refused bake left files behind"


def test_refusal_through_the_python_api(tmp_path: Path) -> None:
    with pytest.raises(FailedHookException):
        bake(tmp_path, project_name="My App")
    assert list(tmp_path.iterdir()) == []


def test_no_provider_at_all_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = bake_cli(out, "use_google=no", "use_github=no", "use_facebook=no")
    assert result.returncode != 0
    assert our_errors(result.stderr) == [
        "ERROR: no sign-in provider selected: set at least one of use_google, use_github, "
        "use_facebook, use_gitlab, use_microsoft, use_oidc to yes."
    ]
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize(
    "answer", ['project_description=say "hi"', "author_name=back\\slash", "author_email= "]
)
def test_text_that_would_break_string_literals_is_refused(tmp_path: Path, answer: str) -> None:
    result = bake_cli(tmp_path / "out", answer)
    assert result.returncode != 0
    errors = our_errors(result.stderr)
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {answer.split('=')[0]} must be")


@pytest.mark.parametrize("name", ["a1", "x", "my-login-app", "app2-v3", "github-login"])
def test_valid_unusual_names_bake(tmp_path: Path, name: str) -> None:
    project = bake(tmp_path, project_name=name, use_github=False, use_facebook=False)
    assert project.name == name
    package = project / "src" / name.replace("-", "_")
    assert (package / "__init__.py").is_file()
    assert (package / "providers" / "google.py").is_file()
    assert not (package / "providers" / "github.py").exists()


# --- post_gen_project.py: next steps -----------------------------------------------------------


@pytest.mark.parametrize("enabled", [PROVIDERS, ("github",), ("google", "facebook"), ("sso",)])
def test_next_steps_name_each_callback_and_console(
    tmp_path: Path, enabled: tuple[str, ...]
) -> None:
    flags = [f"{QUESTIONS[p]}={'yes' if p in enabled else 'no'}" for p in PROVIDERS]
    result = bake_cli(tmp_path / "out", "project_name=my-app", *flags)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for step in (
        "cd my-app",
        "python -m venv .venv && . .venv/bin/activate",
        "pip install -e '.[dev]'",
        "python -m mock_providers.demo",
        "flask --app my_app run",
        ".env",
    ):
        assert step in out, step
    for provider in PROVIDERS:
        callback = f"http://127.0.0.1:5000/auth/{provider}/callback"
        assert (callback in out) == (provider in enabled), provider
        assert (CONSOLES[provider] in out) == (provider in enabled), provider
        assert (provider in out.lower()) == (provider in enabled), provider
    assert len(out.splitlines()) < 40, "keep the next steps short"


# --- post_gen_project.py: .env --------------------------------------------------------------


def test_env_example_lists_the_settings_with_their_defaults(combination) -> None:
    name, project = combination
    expected = dict(CORE_VARIABLES)
    for provider in COMBINATIONS[name]:
        expected.update(PROVIDER_VARIABLES[provider])
    example = env_file(project / ".env.example")
    assert expected.items() <= example.items(), set(expected.items()) - set(example.items())
    # every variable has a comment line right above it
    lines = (project / ".env.example").read_text().splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert index > 0 and lines[index - 1].startswith("# "), line


def test_env_has_fresh_secrets(combination) -> None:
    _, project = combination
    env = env_file(project / ".env")
    example = env_file(project / ".env.example")
    assert env["APP_ENV"] == "development"
    secret_key, fernet_key = env["SECRET_KEY"], env["TOKEN_ENCRYPTION_KEY"]
    assert len(secret_key) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", secret_key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}=", fernet_key)
    assert len(base64.urlsafe_b64decode(fernet_key)) == 32
    # Everything else is exactly the example: no placeholder anywhere.
    generated = ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY")
    others = {k: v for k, v in env.items() if k not in generated}
    assert others == {k: v for k, v in example.items() if k not in generated}
    # The two secrets are random, so a word check could match them by chance ("xxX" did):
    # they are checked for entropy instead, and every other value for placeholder words.
    for secret in (secret_key, fernet_key):
        assert len(set(secret)) >= 20, secret
    for value in others.values():
        assert not re.search(r"change.?me|replace|your[-_ ]|xxx|<|>|TODO", value, re.I), value


def test_token_encryption_key_is_a_fernet_key(baked: dict[str, Path]) -> None:
    fernet = pytest.importorskip("cryptography.fernet")
    key = env_file(baked["all"] / ".env")["TOKEN_ENCRYPTION_KEY"]
    box = fernet.Fernet(key)
    assert box.decrypt(box.encrypt(b"token")) == b"token"


def test_secrets_differ_between_bakes(baked: dict[str, Path]) -> None:
    envs = [env_file(project / ".env") for project in baked.values()]
    for variable in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY"):
        assert len({env[variable] for env in envs}) == len(envs), variable


def test_env_is_private_and_git_ignored_and_the_example_keeps_no_secret(baked) -> None:
    project = baked["all"]
    assert (project / ".env").stat().st_mode & 0o077 == 0
    ignored = (project / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and ".venv/" in ignored and "__pycache__/" in ignored
    example = env_file(project / ".env.example")
    assert example["SECRET_KEY"] == "" and example["TOKEN_ENCRYPTION_KEY"] == ""


# --- post_gen_project.py: disabled providers --------------------------------------------------


def test_disabled_providers_leave_nothing_behind(combination) -> None:
    name, project = combination
    enabled = COMBINATIONS[name]
    package = project / "src" / f"app_{name}"
    files = [path.relative_to(project).as_posix() for path, _ in text_files(project)]
    # The app and its configuration; tests and prose may still name other providers.
    app_files = [project / ".env", project / ".env.example", project / "pyproject.toml"]
    app_files += [path for path, _ in text_files(package)]
    for provider in PROVIDERS:
        own_files = [
            package / "providers" / f"{provider}.py",
            package / "static" / f"{provider}.svg",
            project / "mock_providers" / f"{provider}.py",
            project / "tests" / f"test_{provider}.py",
        ]
        for path in own_files:
            assert path.is_file() == (provider in enabled), path
        if provider in enabled:
            continue
        # .github/ is GitHub Actions' folder (the CI workflow), not the provider's.
        remaining = [f for f in files if provider in f.lower() and not f.startswith(".github/")]
        assert not remaining, f"files of the disabled {provider} provider remain: {remaining}"
        for path in app_files:
            text = path.read_text()
            for variable in PROVIDER_VARIABLES[provider]:
                assert variable not in text, f"{path} mentions {variable}"
            assert f"from .{provider} import" not in text, f"{path} imports {provider}"
    env = env_file(project / ".env")
    for provider in enabled:
        for variable in PROVIDER_VARIABLES[provider]:
            assert variable in env, variable


def test_the_conformance_suite_is_baked_only_with_the_generic_provider(combination) -> None:
    """conformance/ (npm's oidc-provider) and its tests drive the sso provider, nothing else."""
    name, project = combination
    baked = "sso" in COMBINATIONS[name]
    for path in ("conformance/provider.mjs", "conformance/package.json"):
        assert (project / path).is_file() == baked, path
    assert (project / "tests" / "test_sso_conformance.py").is_file() == baked
    assert (project / "conformance").exists() == baked


def test_the_readmes_bake_command_works_as_written(tmp_path: Path) -> None:
    """The template README's "Bake your own project" commands, in a clone of it, by a shell."""
    readme = (TEMPLATE / "README.md").read_text()
    section = readme.split("## Bake your own project\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL).group(1)
    bake_line, cd_line = (line.split("#")[0].strip() for line in block.splitlines()[1:3])
    assert bake_line.startswith("cookiecutter . ") and cd_line.startswith("cd "), block
    home = tmp_path / "home"
    config = isolated_config(tmp_path / "config")
    command = f"{sys.executable} -m {bake_line} --no-input --config-file {config} && {cd_line}"
    result = subprocess.run(
        ["sh", "-c", f"{command} && test -f pyproject.toml && test -f .env && pwd"],
        cwd=TEMPLATE,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(home / "projects" / "flask-social-login")
