"""The functions of the python_requirements example DAG, run in a virtualenv with `inflection` installed."""

import sys

import inflection


def camelize(words):
    return {"camelized": inflection.camelize(words), "version": inflection.__version__, "prefix": sys.prefix}


def titleize(words):
    return {"titleized": inflection.titleize(words), "version": inflection.__version__, "prefix": sys.prefix}
