"""Every command's help in 中文 by default and in English with ``--lang en`` (issue 16, point 4).

The 中文 catalogue (xiezhu/cli/help_zh.py) must cover every command and option of the tree and
name nothing that is not there; the root's help, a group's and a command's are read as a person
reads them, at 80 columns.
"""
from __future__ import annotations

import re

import pytest
import typer.main

from tests.helpers import invoke
from xiezhu.cli import app
from xiezhu.cli.help_zh import ZH
from xiezhu.cli.helptext import command_id, examples, language_of, param_id, walk

CJK = re.compile(r"[\u4e00-\u9fff]")


def ids_of_the_tree() -> tuple[set[str], set[str]]:
    """The ids that need a 中文 text (every command, every option or argument with a help) and all ids."""
    needed, every = set(), set()
    for path, command in walk(typer.main.get_command(app)):
        every.add(command_id(path))
        if command.help:
            needed.add(command_id(path))
        for param in command.params:
            every.add(param_id(path, param))
            if getattr(param, "help", None):
                needed.add(param_id(path, param))
    return needed, every


def helped(*args: str, **env: str) -> str:
    result = invoke(app, [*args, "--help"], env={"COLUMNS": "80", "XIEZHU_LANG": "", **env})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_catalogue_covers_every_command_and_option_and_nothing_else() -> None:
    needed, every = ids_of_the_tree()
    assert sorted(needed - ZH.keys()) == []
    assert sorted(ZH.keys() - every) == []
    assert len(needed) > 400  # 112 commands and their options, not a handful
    assert [k for k, v in ZH.items() if not CJK.search(v)] == []


def test_the_root_help_is_chinese_by_default_and_english_on_request() -> None:
    zh = helped()
    assert "选项" in zh and "命令" in zh and "显示本帮助并退出" in zh
    assert "告知承诺案件及其所处环节或结果" in zh and "[环境变量：XIEZHU_LANG]" in zh
    assert "Commitment cases (告知承诺) of the handling bureaus" not in zh and "Show this message" not in zh
    for en in (helped("--lang", "en"), helped(XIEZHU_LANG="en"), helped("--lang=en")):
        assert "Options" in en and "Commitment cases (告知承诺) of the handling bureaus" in en
        assert "告知承诺案件及其所处环节或结果" not in en and "选项" not in en and "[env var: XIEZHU_LANG]" in en


def test_a_commands_help_and_its_options_follow_the_language() -> None:
    zh = " ".join(helped("sla", "stats").split())
    assert "按部门统计一段时间" in zh and "统计期第一天（ISO 日期）" in zh
    assert "示例：xiezhu sla stats" in zh and "Example" not in zh and "First day of the period" not in zh
    en = " ".join(helped("--lang", "en", "sla", "stats").split())
    assert "Per bureau over a period" in en and "First day of the period" in en and "Example: xiezhu sla stats" in en
    # A language given wrongly leaves the help in 中文 and the root callback says what is wrong.
    assert language_of(["--lang", "fr", "sla"]) == "zh"
    wrong = invoke(app, ["--lang", "fr", "bureaus"], env={"XIEZHU_LANG": ""})
    assert wrong.exit_code != 0 and "zh or en" in str(wrong.exception)


@pytest.mark.parametrize("args", [(), ("sla",), ("sla", "stats"), ("dead-letters",), ("keys", "list"),
                                  ("credit", "show"), ("history",), ("case", "open")])
def test_chinese_help_at_80_columns_is_folded_never_cut(args: tuple[str, ...]) -> None:
    text = helped(*args)
    assert "…" not in text.replace("postgresql://…", "").replace("[|key=value;…]", "").replace("值;…]", "")
    assert CJK.search(text)


def test_examples_are_taken_from_the_english_text() -> None:
    assert examples("Do it.\n\nExample: [bold]xiezhu x --y[/]") == "示例：[bold]xiezhu x --y[/]"
    assert examples("Do it.") == ""


def test_a_usage_error_speaks_the_language_too() -> None:
    zh = invoke(app, ["sla", "--nope"], env={"COLUMNS": "80", "XIEZHU_LANG": ""})
    assert zh.exit_code == 2 and "错误" in zh.output and "查看帮助" in zh.output and "没有选项 --nope" in zh.output
    en = invoke(app, ["--lang", "en", "sla", "--nope"], env={"COLUMNS": "80", "XIEZHU_LANG": ""})
    assert en.exit_code == 2 and "Error" in en.output and "for help" in en.output and "错误" not in en.output
    assert "No such option: --nope" in en.output


def test_a_command_that_prints_no_help_does_not_load_typers_help_screen() -> None:
    """typer.rich_utils (rich's Markdown, pygments) is a good part of a command's start-up: only help needs it."""
    import subprocess
    import sys

    code = "import sys; from xiezhu.cli import app; print('typer.rich_utils' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
