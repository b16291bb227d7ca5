"""Job logs: a resumable job's log keeps the lines of its earlier attempts."""

import logging
import sys

from effunet import logs


def test_a_new_attempt_copies_the_earlier_attempts_lines_into_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stderr", sys.stderr)  # configure() sends stderr to the log
    record, job_log = tmp_path / "ckpt/attempts.log", tmp_path / "job.log"
    record.parent.mkdir()
    say = logging.getLogger("effunet.test")
    try:
        for attempt in (1, 2, 3):
            job_log.unlink(missing_ok=True)  # Snakemake deletes a job's log before running it again
            logs.configure(job_log)
            logs.keep_across_attempts(record)  # attempts 1 and 2 "die" without stop_keeping
            say.info("attempt %d started", attempt)
        text = job_log.read_text()
        assert [line.split(": ")[-1] for line in text.splitlines()] == [f"attempt {i} started" for i in (1, 2, 3)]
        mirrors = [h for h in logging.getLogger().handlers if getattr(h, "keeps_attempts", False)]
        assert len(mirrors) == 1  # an earlier attempt's handler in the same process was replaced
        logs.stop_keeping(mirrors[0])
        say.info("done")
        assert record.read_text().count("started") == 3 and "done" not in record.read_text()
        assert job_log.read_text().endswith("done\n")
    finally:
        logs.configure(None)
