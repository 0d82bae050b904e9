from xdsgen.cli import main

main()
