from agecompact.cli import main

main()
