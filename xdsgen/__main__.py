from xdsgen.cli.leave import run

run()
