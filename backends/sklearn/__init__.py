"""The scikit-learn backend: fitted estimators (predict_proba / decision_function / predict)."""
