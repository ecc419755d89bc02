"""Python code of the example DAGs beside it, imported as `examples.<module>` from the DAG folder."""
