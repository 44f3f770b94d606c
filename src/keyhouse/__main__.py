"""python -m keyhouse"""

from keyhouse.cli.main import run

run()
