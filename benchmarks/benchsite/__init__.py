"""A minimal Django project serving django_alipay and the benchmarks' baseline views under gunicorn."""
