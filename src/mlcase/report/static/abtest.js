/* mlcase A/B page: draw every <div class="plotly-fig"> from the JSON in the <script data-for="ID"> beside it. */
document.querySelectorAll('script[data-for]').forEach(function(s){
  var spec = JSON.parse(s.textContent);
  Plotly.newPlot(s.getAttribute('data-for'), spec.data || [], spec.layout || {}, {displaylogo:false, responsive:true});
});
