"""Results output: JSONL records, CSV, Markdown tables laid out like the paper, PNG plots."""

from cxrbench.report.tables import markdown_tables, write_csv
from cxrbench.report.write import write_records, write_run

__all__ = ["markdown_tables", "write_csv", "write_records", "write_run"]
