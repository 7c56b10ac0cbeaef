from guardreasoner.cli import main

main()
