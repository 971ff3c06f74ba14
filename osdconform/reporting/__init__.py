"""What a run leaves behind: the JSON conformance report and reproducer scripts.

`_report`: the report's data (counts per property x backend x feature), its
Markdown matrix and the difference against a baseline run.  `_repro`:
standalone scripts that re-run one failing example without Hypothesis;
`_launcher`: the rank launcher whose source every such script embeds.
"""
