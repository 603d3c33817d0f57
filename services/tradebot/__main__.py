from tradebot.cli.main import app

app()
